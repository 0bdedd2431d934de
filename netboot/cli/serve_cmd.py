"""`netboot serve`."""

from __future__ import annotations

import click

from netboot.cli.app import App, pass_app
from netboot.inventory import Inventory
from netboot.server import build_services, check_interface, run


@click.command()
@pass_app
def serve(app: App) -> None:
    """Run DHCP, TFTP, HTTP and target reconcile on the boot interface until stopped."""
    config = app.config
    check_interface(config)
    run(build_services(config, lambda: Inventory(config.storage.database)))
