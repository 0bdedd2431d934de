"""`netboot host add|list|show|remove`: SAN hosts, servers that use LUNs on a target of
their own and do not boot from netboot."""

from __future__ import annotations

from dataclasses import asdict

import click

from netboot.cli.app import App, pass_app
from netboot.cli.params import HOST_NAME, INITIATOR_CONFIG, SHOW_SECRETS
from netboot.inventory.hosts import Host, discovery_mutual, get_host, hosts
from netboot.inventory.luns import LunOwner, OwnerKind, host_luns, luns_of
from netboot.output import emit_json, fields_table, table, when
from netboot.provisioning.chap import mask
from netboot.provisioning.hosts import add_host, remove_host
from netboot.provisioning.initiator import initiator_config as render_initiator_config
from netboot.size import format_size
from netboot.target import open_backend


def _host_fields(host: Host, show_secrets: bool) -> list[tuple[str, object]]:
    return [
        ("name", host.name),
        ("initiator iqn", host.initiator_iqn),
        ("target iqn", host.target_iqn),
        ("chap user", host.chap_user),
        ("chap secret", host.chap_secret if show_secrets else mask(host.chap_secret)),
        ("mutual user", host.mutual_user),
        ("mutual secret", host.mutual_secret if show_secrets else mask(host.mutual_secret)),
        ("created", when(host.created)),
    ]


def _host_json(host: Host, show_secrets: bool) -> dict[str, object]:
    data = asdict(host)
    data["mutual_user"] = host.mutual_user
    if not show_secrets:
        data["chap_secret"] = mask(host.chap_secret)
        data["mutual_secret"] = mask(host.mutual_secret)
    return data


@click.group()
def host() -> None:
    """SAN hosts: servers that boot from their own disks and use LUNs on a target of their
    own (no MAC, address, root LUN or DHCP)."""


@host.command()
@click.argument("name", type=HOST_NAME)
@click.option("--iqn", "iqn", required=True,
              help="The host's initiator name (its /etc/iscsi/initiatorname.iscsi).")
@pass_app
def add(app: App, name: str, iqn: str) -> None:
    """Register SAN host NAME, admitting initiator IQN alone to its new target."""
    added, applied = add_host(app.config, app.inventory, name, iqn,
                              backend=open_backend(app.config))
    click.echo(fields_table(_host_fields(added, show_secrets=False)))
    click.echo(f"target: {applied}")
    click.echo(f"next: `netboot lun add {name} --file PATH --size SIZE`, then "
               f"`netboot host show {name} --initiator-config` for the host's settings")


@host.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """List SAN hosts."""
    found = hosts(app.inventory)
    counts: dict[str, int] = {}
    for record in host_luns(app.inventory):
        counts[record.owner] = counts.get(record.owner, 0) + 1
    if as_json:
        emit_json([{**_host_json(h, show_secrets=False), "luns": counts.get(h.name, 0)}
                   for h in found])
        return
    click.echo(table(["name", "initiator iqn", "target iqn", "luns", "created"],
                     [(h.name, h.initiator_iqn, h.target_iqn, counts.get(h.name, 0),
                       when(h.created)) for h in found]))


@host.command()
@click.argument("name", type=HOST_NAME)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@SHOW_SECRETS
@INITIATOR_CONFIG
@pass_app
def show(app: App, name: str, as_json: bool, show_secrets: bool,
         initiator_config: bool) -> None:
    """Show one SAN host and its LUNs."""
    found = get_host(app.inventory, name)
    if initiator_config:
        click.echo(render_initiator_config(app.config, found, discovery_mutual(app.inventory)),
                   nl=False)
        return
    luns = luns_of(app.inventory, LunOwner(OwnerKind.HOST, name))
    address, port = app.config.portal
    if as_json:
        emit_json({**_host_json(found, show_secrets),
                   "luns": [{k: v for k, v in asdict(r).items() if k != "owner"} for r in luns],
                   "portal": f"{address}:{port}"})
        return
    pairs = _host_fields(found, show_secrets)
    pairs += [(f"lun {r.lun}", f"{r.kind} {r.path} ({format_size(r.size)})") for r in luns]
    pairs.append(("portal", f"{address}:{port}"))
    click.echo(fields_table(pairs))


@host.command()
@click.argument("name", type=HOST_NAME)
@pass_app
def remove(app: App, name: str) -> None:
    """Unregister SAN host NAME and remove its target; its LUNs' data is kept (netboot
    never deletes what backs an added LUN)."""
    gone = remove_host(app.config, app.inventory, name, backend=open_backend(app.config))
    click.echo(f"removed SAN host {gone.host.name}")
    for record in gone.luns:
        click.echo(f"LUN {record.lun}: data kept in {record.path}")
    click.echo(f"target: {gone.target}")
