"""`netboot kernel fetch` and `netboot initramfs build`: what every client boots."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from netboot.arch import FACTS, Arch, by_flavour
from netboot.cli.app import App, pass_app
from netboot.cli.params import ARCH
from netboot.errors import ValidationError
from netboot.initramfs.build import Compression, build
from netboot.initramfs.kernel import FLAVOURS, download, install
from netboot.output import emit_json, table


def _progress(quiet: bool):
    """Progress lines on stderr, so stdout stays the result (or JSON)."""
    return (lambda _msg: None) if quiet else (lambda msg: click.echo(f"  {msg}", err=True))


@click.group()
def kernel() -> None:
    """The boot kernel: vmlinuz and its modules, from one Debian package."""


@kernel.command()
@click.option("--flavour", type=click.Choice(FLAVOURS),
              help="Kernel flavour (default: boot.kernel_flavour).")
@click.option("--deb", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Install this kernel .deb instead of downloading one.")
@click.option("--tree", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Install an extracted package tree (boot/vmlinuz-V, lib/modules/V).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@ARCH
@pass_app
def fetch(app: App, flavour: str | None, deb: Path | None, tree: Path | None,
          as_json: bool, arch: Arch) -> None:
    """Download (or take) a kernel package, unpack it, run depmod and make it current.

    Default flavour: boot.kernel_flavour for amd64, cloud-arm64 for arm64."""
    if deb and tree:
        raise click.UsageError("give --deb or --tree, not both")
    config = app.config
    flavour = flavour or (config.boot.kernel_flavour if arch is Arch.AMD64
                          else FACTS[arch].kernel_flavour)
    if by_flavour(flavour) is not arch:
        raise ValidationError(f"kernel flavour {flavour} is not for {arch}")
    progress = _progress(as_json)
    if deb is None and tree is None:
        deb = download(flavour, config.storage.cache, progress)
    release = install(config, progress, deb=deb, tree=tree, arch=arch)
    served = config.kernel_file(arch)
    if as_json:
        emit_json({"version": release.version, "package": release.package,
                   "package_version": release.package_version, "sha256": release.sha256,
                   "vmlinuz": str(served), "modules": str(release.modules),
                   "arch": arch.value})
    else:
        click.echo(f"kernel {release.version} ({release.package} {release.package_version}) "
                   f"-> {served}")


@click.group()
def initramfs() -> None:
    """The shared base initramfs every client boots with."""


@initramfs.command("build")
@click.option("--compression", type=click.Choice([c.value for c in Compression]),
              default=Compression.AUTO.value, show_default=True,
              help="auto: zstd if the kernel unpacks it, else gzip.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@ARCH
@pass_app
def build_cmd(app: App, compression: str, as_json: bool, arch: Arch) -> None:
    """Build the base image (reproducible; SOURCE_DATE_EPOCH sets its file times), from
    the kernel and the Debian programs of its architecture (another than this machine's:
    its packages fetched with apt-get download into the cache)."""
    manifest = build(app.config, _progress(as_json), Compression(compression), arch)
    if as_json:
        emit_json(asdict(manifest))
        return
    click.echo(table(["part", "files", "size", "contents"],
                     [(c["name"], c["files"], f"{c['bytes'] / 1e6:.2f} MB", c["detail"])
                      for c in manifest.components]))
    for note in manifest.notes:
        click.echo(f"note: {note}")
    click.echo(f"{manifest.path}: {manifest.size / 1e6:.2f} MB {manifest.compression} "
               f"({manifest.uncompressed_size / 1e6:.2f} MB unpacked), kernel "
               f"{manifest.kernel_version}, sha256 of inputs {manifest.digest[:16]}"
               f"{' (cached)' if manifest.cached else ''}")
