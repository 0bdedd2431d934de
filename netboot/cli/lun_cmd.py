"""`netboot lun add|list|remove`: LUNs on a client's target (2, 3, ...) or a SAN host's
(1, 2, ...)."""

from __future__ import annotations

from pathlib import Path

import click

from netboot.cli.app import App, pass_app
from netboot.cli.params import LUN_OWNER, SIZE
from netboot.inventory.clients import BootMethod
from netboot.inventory.luns import LOWER_LUN, ROOT_LUN, LunOwner, OwnerKind, luns_of
from netboot.output import emit_json, table, when
from netboot.provisioning.clients import apply_targets
from netboot.provisioning.luns import add_lun, remove_lun
from netboot.size import format_size
from netboot.storage.images import get_image
from netboot.storage.location import RBD_SCHEME, Location
from netboot.target import open_backend

OWNER_HELP = "OWNER: a client's MAC, or else a SAN host's name (`netboot host add`)."


@click.group()
def lun() -> None:
    """LUNs for a client or a SAN host: network storage under its target's ACL and CHAP."""


@lun.command(epilog=OWNER_HELP)
@click.argument("owner", metavar="OWNER", type=LUN_OWNER)
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file to serve (created sparse when missing; then --size is needed).")
@click.option("--device", type=click.Path(dir_okay=False, path_type=Path),
              help="A block device to serve, e.g. /dev/vg0/data.")
@click.option("--rbd", "rbd", metavar="POOL/IMAGE",
              help="An RBD image in Ceph (storage.rbd's cluster and client; created when "
              "missing, then --size is needed).")
@click.option("--size", type=SIZE, help="Size of a file or RBD image that does not exist yet.")
@pass_app
def add(app: App, owner: LunOwner, file: Path | None, device: Path | None, rbd: str | None,
        size: int | None) -> None:
    """Add the next LUN to OWNER's target."""
    image = Location.parse(f"{RBD_SCHEME}{rbd}") if rbd is not None else None
    record = add_lun(app.config, app.inventory, owner, file=file, device=device, rbd=image,
                     size=size)
    target_iqn = owner.target_iqn(app.inventory)
    try:
        applied = apply_targets(app.config, app.inventory, open_backend(app.config), target_iqn)
    except BaseException:
        remove_lun(app.inventory, owner, record.lun)
        raise
    click.echo(f"LUN {record.lun} of {target_iqn}: {record.kind.value} {record.path} "
               f"({format_size(record.size)})")
    click.echo(f"target: {applied}")


@lun.command(name="list", epilog=OWNER_HELP)
@click.argument("owner", metavar="OWNER", type=LUN_OWNER)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def list_(app: App, owner: LunOwner, as_json: bool) -> None:
    """List OWNER's LUNs (a client's root, 1, first)."""
    rows = []
    lower = None
    if owner.kind is OwnerKind.CLIENT:
        client = app.inventory.get(owner.key)
        overlay = client.boot_method is BootMethod.OVERLAY
        rows.append((ROOT_LUN, "upper" if overlay else "root", client.lun_path,
                     client.lun_size, client.created))
        if overlay and client.image:
            image = get_image(app.config, client.image)
            lower = (LOWER_LUN, "image (read-only)", str(image.location), image.size,
                     image.created)
    else:
        owner.target_iqn(app.inventory)  # NotFound, naming it, if it is not registered
    rows += [(r.lun, r.kind.value, r.path, r.size, r.created)
             for r in luns_of(app.inventory, owner)]
    rows += [lower] if lower else []
    if as_json:
        emit_json([{"lun": n, "kind": k, "path": p, "size": s, "created": c}
                   for n, k, p, s, c in rows])
        return
    click.echo(table(["lun", "kind", "path", "size", "added"],
                     [(n, k, p, format_size(s), when(c)) for n, k, p, s, c in rows]))


@lun.command(epilog=OWNER_HELP)
@click.argument("owner", metavar="OWNER", type=LUN_OWNER)
@click.argument("number", type=int)
@pass_app
def remove(app: App, owner: LunOwner, number: int) -> None:
    """Remove LUN NUMBER from OWNER's target (a client's root, 1, stays); its data is left
    alone."""
    gone = remove_lun(app.inventory, owner, number)
    applied = apply_targets(app.config, app.inventory, open_backend(app.config))
    click.echo(f"removed LUN {gone.lun} ({gone.path}; data kept)")
    click.echo(f"target: {applied}")
