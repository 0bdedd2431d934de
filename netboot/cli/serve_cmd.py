"""`netboot serve`."""

from __future__ import annotations

import click

from netboot.cli.app import App, pass_app
from netboot.serve.supervise import serve as run_serve
from netboot.serve.supervise import serve_network_part


@click.command()
@click.option("--network-part", is_flag=True, hidden=True,
              help="Run only DHCP, TFTP and HTTP (started by serve itself, not by hand).")
@click.option("--ready-fd", type=int, hidden=True, help="Where the network part says it serves.")
@pass_app
def serve(app: App, network_part: bool, ready_fd: int | None) -> None:
    """Run DHCP, TFTP, HTTP and target reconcile on the boot interface until stopped."""
    if network_part:
        if ready_fd is None:
            raise click.UsageError("--network-part needs --ready-fd")
        serve_network_part(app.config, ready_fd)
    else:
        run_serve(app.config)
