"""`netboot image build|import|list|remove`."""

from __future__ import annotations

from pathlib import Path

import click

from netboot.cli.app import App, pass_app
from netboot.cli.params import SIZE
from netboot.cli.progress import copy_progress
from netboot.errors import ValidationError
from netboot.images import (
    Image,
    build_builtin,
    build_image,
    import_image,
    list_images,
    remove_image,
)
from netboot.output import emit_json, table, when
from netboot.size import format_size


def _image_json(image: Image) -> dict[str, object]:
    return {"name": image.name, "path": str(image.path), "size": image.size,
            "used": image.used, "created": image.created, "clients": list(image.clients)}


@click.group()
def image() -> None:
    """Golden images that client roots are cloned from."""


@image.command()
@click.argument("name")
@click.option("--from-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory tree to put in the image.")
@click.option("--builtin", is_flag=True,
              help="The tiny built-in image: busybox and an init that reports and powers off.")
@click.option("--size", type=SIZE, help="Image size (default: fitted to the tree).")
@pass_app
def build(app: App, name: str, from_dir: Path | None, builtin: bool, size: int | None) -> None:
    """Build an ext4 image NAME with mke2fs -d (no mounts, no root needed)."""
    if builtin == (from_dir is not None):
        raise ValidationError("give exactly one of --from-dir DIR or --builtin")
    made = (build_builtin(app.config, name, size) if builtin
            else build_image(app.config, name, from_dir, size))
    click.echo(f"built image {made.name}: {format_size(made.size)} "
               f"({format_size(made.used)} used) at {made.path}")


@image.command(name="import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@pass_app
def import_(app: App, name: str, file: Path) -> None:
    """Copy an existing ext2/3/4 image FILE in as NAME."""
    with copy_progress(f"importing {name}") as progress:
        made, method = import_image(app.config, name, file, progress)
    click.echo(f"imported image {made.name} by {method}: {format_size(made.size)} "
               f"({format_size(made.used)} used)")


@image.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """List images with their size, the bytes they really use and the clients cloned from them."""
    images = list_images(app.config, app.inventory)
    if as_json:
        emit_json([_image_json(i) for i in images])
        return
    click.echo(table(["name", "size", "used", "clients", "created"],
                     [(i.name, format_size(i.size), format_size(i.used),
                       ", ".join(i.clients) or None, when(i.created)) for i in images]))


@image.command()
@click.argument("name")
@pass_app
def remove(app: App, name: str) -> None:
    """Delete image NAME (refused while a client cloned from it is registered)."""
    gone = remove_image(app.config, app.inventory, name)
    click.echo(f"removed image {gone.name}")
