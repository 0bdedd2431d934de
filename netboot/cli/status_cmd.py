"""`netboot status`: where every client's last boot got to."""

from __future__ import annotations

import time

import click

from netboot.admin.views import status_json
from netboot.cli.app import App, pass_app
from netboot.output import emit_json, table, when
from netboot.storage.backend import describe
from netboot.storage.location import Location


def _ago(stamp: float | None, now: float) -> str | None:
    if stamp is None:
        return None
    seconds = int(now - stamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """Each client's last boot stage and when it was reached, then the servers sharing the
    inventory: which run, and which holds the iSCSI portal."""
    now = time.time()
    if as_json:
        emit_json(status_json(app.inventory, now))
        return
    clients = app.inventory.clients()
    unknown = app.inventory.unknown_machines()
    servers = app.inventory.servers()
    click.echo(table(
        ["hostname", "mac", "ip", "image", "booted", "stage", "reached", "when", "root"],
        [(c.hostname, c.mac, c.ip, c.image, c.booted_image, c.last_stage,
          when(c.last_stage_at), _ago(c.last_stage_at, now),
          describe(Location.parse(c.lun_path)) if c.lun_path else None) for c in clients]))
    if servers:
        click.echo()
        click.echo(table(
            ["server", "address", "state", "portal", "dynamic range", "seen"],
            [(s.name, s.address, s.liveness(now), s.portal, f"{s.range_start}-{s.range_end}",
              _ago(s.seen, now)) for s in servers]))
    if unknown:
        click.echo(f"\n{len(unknown)} unregistered machine(s) asked to boot: "
                   "'netboot client list --unknown' lists them")
