"""`netboot image build|import|list|remove`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from netboot.admin.views import image_json
from netboot.arch import Arch
from netboot.cli.app import App, pass_app
from netboot.cli.params import ARCH, SIZE
from netboot.cli.progress import copy_progress
from netboot.errors import ValidationError
from netboot.output import emit_json, table, when
from netboot.size import format_size
from netboot.storage.backend import describe
from netboot.storage.images import (
    build_builtin,
    build_debian,
    build_image,
    import_image,
    list_images,
    remove_image,
)


@click.group()
def image() -> None:
    """Golden images that client roots are cloned from."""


@image.command()
@click.argument("name")
@click.option("--from-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory tree to put in the image.")
@click.option("--builtin", is_flag=True,
              help="The tiny built-in image: busybox and an init that reports and powers off.")
@click.option("--debootstrap", "suite", metavar="SUITE",
              help="A Debian root of SUITE (e.g. bookworm) built by mmdebstrap, cached "
              "(needs root and `netboot kernel fetch` first).")
@click.option("--packages", default="", metavar="A,B",
              help="With --debootstrap: extra Debian packages, comma-separated.")
@click.option("--files", type=click.Path(file_okay=False, exists=True, path_type=Path),
              metavar="DIR",
              help="With --debootstrap: a tree of files copied into the root, owned by root "
              "(DIR/etc/motd becomes /etc/motd); the cached packages are reused.")
@click.option("--sanboot", is_flag=True,
              help="With --debootstrap: a bootable disk with its own kernel, for clients "
              "with --boot-method sanboot.")
@click.option("--size", type=SIZE,
              help="Image size (default: fitted to the tree; 2G with --debootstrap).")
@ARCH
@pass_app
def build(app: App, name: str, from_dir: Path | None, builtin: bool, suite: str | None,
          packages: str, files: Path | None, sanboot: bool, size: int | None,
          arch: Arch) -> None:
    """Build the next version of image NAME (NAME@1, NAME@2, ...; earlier versions stay as
    they are): an ext4 filesystem made by mke2fs -d (no mounts), or with --debootstrap
    --sanboot a bootable disk."""
    if [builtin, from_dir is not None, suite is not None].count(True) != 1:
        raise ValidationError("give exactly one of --from-dir DIR, --builtin or "
                              "--debootstrap SUITE")
    if suite is None and (packages or sanboot or files):
        raise ValidationError("--packages, --files and --sanboot go with --debootstrap")
    if arch is not Arch.AMD64 and not builtin:
        raise ValidationError(f"--arch {arch} goes with --builtin")
    if suite is not None:
        extra = tuple(p.strip() for p in packages.split(",") if p.strip())
        made = build_debian(app.config, name, suite, extra, size, sanboot=sanboot,
                            progress=_step_printer(), files=files)
    elif builtin:
        made = build_builtin(app.config, name, size, arch)
    else:
        assert from_dir is not None
        made = build_image(app.config, name, from_dir, size)
    click.echo(f"built image {made.ref} ({made.layout.value}): {format_size(made.size)} "
               f"({format_size(made.used)} used) at {describe(made.location)}")


def _step_printer() -> Callable[[str], None]:
    """Each build step on stderr with the seconds since the start."""
    started = time.monotonic()

    def say(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr)
    return say


@image.command(name="import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@pass_app
def import_(app: App, name: str, file: Path) -> None:
    """Copy an existing ext2/3/4 image FILE in as the next version of NAME."""
    with copy_progress(f"importing {name}") as progress:
        made, method = import_image(app.config, name, file, progress)
    click.echo(f"imported image {made.ref} by {method}: {format_size(made.size)} "
               f"({format_size(made.used)} used)")


@image.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """List every version of every image: size, the bytes it really uses, how it was made
    and the clients cloned from it."""
    images = list_images(app.config, app.inventory)
    if as_json:
        emit_json([image_json(i) for i in images])
        return
    click.echo(table(["image", "layout", "size", "used", "made", "clients", "created"],
                     [(i.ref, i.layout.value, format_size(i.size), format_size(i.used),
                       i.made or None, ", ".join(i.clients) or None, when(i.created))
                      for i in images]))


@image.command()
@click.argument("name", metavar="NAME[@N]")
@pass_app
def remove(app: App, name: str) -> None:
    """Delete version NAME@N, or every version of NAME (refused while a registered client
    was cloned from one)."""
    for gone in remove_image(app.config, app.inventory, name):
        click.echo(f"removed image {gone.ref}")
