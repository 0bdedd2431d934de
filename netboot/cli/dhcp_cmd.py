"""`netboot dhcp`: the DHCP server's state as operators look at it."""

from __future__ import annotations

import time

import click

from netboot.cli.app import App, pass_app
from netboot.dhcp.leases import LeaseStore
from netboot.output import emit_json, table, when


@click.group()
def dhcp() -> None:
    """DHCP state: leases of unregistered machines and declined addresses."""


@dhcp.command()
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def leases(app: App, as_json: bool) -> None:
    """Leases from the dynamic range (machines booted under `dhcp.unknown: boot`) and
    addresses kept out of it because a client declined them. Registered clients have
    fixed addresses: `netboot client list` shows those."""
    now = time.time()
    held = LeaseStore(app.inventory).load(now)
    rows = [(lease.mac, str(lease.ip), lease.expires, "active" if lease.expires > now
             else "expired") for lease in held.leases()]
    declined = held.declined_until(now)
    if as_json:
        emit_json({
            "leases": [dict(zip(("mac", "ip", "expires", "state"), row, strict=True))
                       for row in rows],
            "declined": [{"ip": str(ip), "until": until} for ip, until in declined.items()],
        })
        return
    click.echo(table(["mac", "ip", "expires", "state"],
                     [(mac, ip, when(expires), state) for mac, ip, expires, state in rows]))
    if declined:
        click.echo()
        click.echo(table(["declined ip", "kept out until"],
                         [(ip, when(until)) for ip, until in declined.items()]))
