"""`netboot init` and `netboot config check|show`."""

from __future__ import annotations

import datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import click
import yaml

from netboot.cli.app import App, pass_app
from netboot.cli.params import IPV4, NETWORK
from netboot.config import DhcpConfig, effective_config, first_host
from netboot.configfile import parse_config
from netboot.errors import NetbootError
from netboot.host.files import atomic_write
from netboot.host.iproute import ipv4_addresses
from netboot.output import emit_json
from netboot.templates import render


def _server_address(interface: str, subnet: IPv4Network) -> IPv4Address:
    """The interface's own address in the subnet, else the subnet's first host."""
    for iface in ipv4_addresses(interface):
        if iface.ip in subnet:
            return iface.ip
    return first_host(subnet)


@click.command()
@click.option("--interface", required=True, help="The boot VLAN's network interface.")
@click.option("--subnet", type=NETWORK, required=True, help="The boot subnet, e.g. 198.18.0.0/24.")
@click.option("--address", type=IPV4, help="This server's address (default: the interface's).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path("/var/lib/netboot"),
              show_default=True, help="Where the inventory, images and LUNs live.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@pass_app
def init(app: App, interface: str, subnet: IPv4Network, address: IPv4Address | None,
         state_dir: Path, force: bool) -> None:
    """Write a commented starter config to --config."""
    path = app.config_path
    if path.exists() and not force:
        raise NetbootError(f"{path} already exists (use --force to overwrite it)")
    address = address or _server_address(interface, subnet)
    start, end = DhcpConfig(subnet=subnet).dynamic_range
    today = datetime.date.today()
    text = render(
        "netboot.yaml.j2",
        today=today.isoformat(), interface=interface, address=address, subnet=subnet,
        range_start=start, range_end=end, state_dir=state_dir.absolute(),
        iqn_month=f"{today:%Y-%m}",
    )
    parse_config(text, str(path))  # what init writes must load: fail here, not at serve time
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode(), 0o644)
    click.echo(f"wrote {path}; check it with 'netboot --config {path} config check'")


@click.group()
def config() -> None:
    """Validate or print the configuration."""


@config.command()
@pass_app
def check(app: App) -> None:
    """Validate the config file; on error, name file, line and key."""
    app.config  # noqa: B018 -- loading is the check
    click.echo(f"{app.config_path}: OK")


@config.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@pass_app
def show(app: App, as_json: bool) -> None:
    """Print the effective config, defaults filled in."""
    values = effective_config(app.config)
    if as_json:
        emit_json(values)
    else:
        click.echo(yaml.safe_dump(values, sort_keys=False, default_flow_style=False), nl=False)
