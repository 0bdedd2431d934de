"""`netboot lun add|list|remove`: extra LUNs (2, 3, ...) on a client's target."""

from __future__ import annotations

from pathlib import Path

import click

from netboot.cli.app import App, pass_app
from netboot.cli.params import MAC, SIZE
from netboot.inventory.luns import ROOT_LUN, extra_luns
from netboot.output import emit_json, table, when
from netboot.provisioning.clients import apply_targets
from netboot.provisioning.luns import add_lun, remove_lun
from netboot.size import format_size
from netboot.storage.location import RBD_SCHEME, Location
from netboot.target import open_backend


@click.group()
def lun() -> None:
    """Extra LUNs for a client: network storage under its target's ACL and CHAP."""


@lun.command()
@click.argument("mac", type=MAC)
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file to serve (created sparse when missing; then --size is needed).")
@click.option("--device", type=click.Path(dir_okay=False, path_type=Path),
              help="A block device to serve, e.g. /dev/vg0/data.")
@click.option("--rbd", "rbd", metavar="POOL/IMAGE",
              help="An RBD image in Ceph (storage.rbd's cluster and client; created when "
              "missing, then --size is needed).")
@click.option("--size", type=SIZE, help="Size of a file or RBD image that does not exist yet.")
@pass_app
def add(app: App, mac: str, file: Path | None, device: Path | None, rbd: str | None,
        size: int | None) -> None:
    """Add the next LUN to client MAC's target."""
    image = Location.parse(f"{RBD_SCHEME}{rbd}") if rbd is not None else None
    record = add_lun(app.config, app.inventory, mac, file=file, device=device, rbd=image,
                     size=size)
    client = app.inventory.get(mac)
    try:
        applied = apply_targets(app.config, app.inventory, open_backend(app.config),
                                client.target_iqn)
    except BaseException:
        remove_lun(app.inventory, mac, record.lun)
        raise
    click.echo(f"LUN {record.lun} of {client.target_iqn}: {record.kind.value} {record.path} "
               f"({format_size(record.size)})")
    click.echo(f"target: {applied}")


@lun.command(name="list")
@click.argument("mac", type=MAC)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def list_(app: App, mac: str, as_json: bool) -> None:
    """List client MAC's LUNs, the root (1) first."""
    client = app.inventory.get(mac)
    records = extra_luns(app.inventory, mac)
    rows = [(ROOT_LUN, "root", client.lun_path, client.lun_size, client.created)]
    rows += [(r.lun, r.kind.value, r.path, r.size, r.created) for r in records]
    if as_json:
        emit_json([{"lun": n, "kind": k, "path": p, "size": s, "created": c}
                   for n, k, p, s, c in rows])
        return
    click.echo(table(["lun", "kind", "path", "size", "added"],
                     [(n, k, p, format_size(s), when(c)) for n, k, p, s, c in rows]))


@lun.command()
@click.argument("mac", type=MAC)
@click.argument("number", type=int)
@pass_app
def remove(app: App, mac: str, number: int) -> None:
    """Remove LUN NUMBER (2, 3, ...) from client MAC's target; its data is left alone."""
    gone = remove_lun(app.inventory, mac, number)
    applied = apply_targets(app.config, app.inventory, open_backend(app.config))
    click.echo(f"removed LUN {gone.lun} ({gone.path}; data kept)")
    click.echo(f"target: {applied}")
