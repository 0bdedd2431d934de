"""`netboot server forget`: the servers sharing the inventory (``netboot status`` lists them)."""

from __future__ import annotations

import time

import click

from netboot.cli.app import App, pass_app
from netboot.errors import NetbootError, NotFound
from netboot.inventory.servers import Liveness


@click.group()
def server() -> None:
    """The netboot servers sharing this inventory."""


@server.command()
@click.argument("name")
@pass_app
def forget(app: App, name: str) -> None:
    """Remove the row of server NAME, one taken out of service (not a running one)."""
    now = time.time()
    found = next((s for s in app.inventory.servers() if s.name == name), None)
    if found is None:
        raise NotFound(f"no server named {name} in the inventory")
    if found.liveness(now) is Liveness.RUNNING:
        raise NetbootError(f"server {name} is running (its heartbeat is "
                           f"{now - found.seen:.0f} s old): stop its serve first")
    app.inventory.forget_server(name)
    click.echo(f"forgot server {name} ({found.address}, {found.liveness(now)})")
