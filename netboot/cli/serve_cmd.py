"""`netboot serve` and `netboot install-service`."""

from __future__ import annotations

from pathlib import Path

import click

from netboot.cli.app import App, pass_app
from netboot.serve.supervise import serve as run_serve
from netboot.serve.supervise import serve_network_part
from netboot.serve.unit import SYSTEMD_RUNNING, UNIT_DIR, UNIT_NAME, install_unit


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


@click.command("install-service")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=UNIT_DIR,
              show_default=True, help="Where to write netboot.service.")
@pass_app
def install_service(app: App, unit_dir: Path) -> None:
    """Write the systemd unit that runs `netboot serve` with this config."""
    assert app.config.source is not None
    path = install_unit(app.config.source, unit_dir)
    click.echo(f"wrote {path}")
    if SYSTEMD_RUNNING.is_dir():
        click.echo(f"start it now and at every boot: systemctl enable --now {UNIT_NAME}")
    else:
        click.echo("systemd is not running on this machine: the unit takes effect where it is")
