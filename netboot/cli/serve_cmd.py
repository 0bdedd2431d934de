"""`netboot serve`."""

from __future__ import annotations

import click

from netboot.cli.app import App, pass_app
from netboot.serve.supervise import serve as run_serve


@click.command()
@pass_app
def serve(app: App) -> None:
    """Run DHCP, TFTP, HTTP and target reconcile on the boot interface until stopped."""
    run_serve(app.config)
