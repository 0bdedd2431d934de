"""`netboot client add|list|show|set|power|remove|reimage|reset`."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from functools import partial
from ipaddress import IPv4Address
from pathlib import Path

import click

from netboot.admin.views import client_detail_json, client_json, used_bytes
from netboot.cli.app import App, pass_app
from netboot.cli.params import BMC_URL, INITIATOR_CONFIG, IPV4, MAC, SHOW_SECRETS, SIZE
from netboot.cli.progress import copy_progress
from netboot.config import Config
from netboot.inventory.bmcs import find_bmc
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.luns import LOWER_LUN, extra_luns
from netboot.inventory.servers import portal_holder
from netboot.output import emit_json, fields_table, table, when
from netboot.power.bmc import (
    Bmc,
    PowerAction,
    check_password,
    read_ca_file,
    read_password_file,
    with_tls,
)
from netboot.power.control import power as power_through
from netboot.power.shutdown import SOFT_TIMEOUT
from netboot.provisioning.chap import mask
from netboot.provisioning.clients import add_client, remove_client
from netboot.provisioning.initiator import initiator_config as render_initiator_config
from netboot.provisioning.overlay import reset_upper, set_lower
from netboot.provisioning.power import power_clients, remove_client_bmc, set_client_bmc
from netboot.provisioning.reimage import purge_previous, reimage_client, undo_reimage
from netboot.size import format_size
from netboot.storage.backend import describe
from netboot.storage.location import Location
from netboot.target import open_backend

POWERED_OFF = click.option(
    "--powered-off", is_flag=True,
    help="The machine is off (a session the target still lists is a dead one): go ahead.")


def _root(client: Client) -> str | None:
    return describe(Location.parse(client.lun_path)) if client.lun_path else None


def _client_fields(config: Config, client: Client, show_secrets: bool,
                   bmc: Bmc | None = None) -> list[tuple[str, object]]:
    secret = client.chap_secret if show_secrets else mask(client.chap_secret)
    mutual = client.mutual_secret if show_secrets else mask(client.mutual_secret)
    bmc_password = None if bmc is None else bmc.password if show_secrets else mask(bmc.password)
    return [
        ("mac", client.mac),
        ("hostname", client.hostname),
        ("ip", client.ip),
        ("image", client.image),
        ("root", _root(client)),
        ("previous root", client.previous_lun_path and
         f"{describe(Location.parse(client.previous_lun_path))} "
         f"({client.previous_image or 'no image'}; `client reimage --undo` puts it back)"),
        ("lun size", format_size(client.lun_size)),
        ("lun used", None if (used := used_bytes(config, client)) is None else format_size(used)),
        ("provisioned", "yes" if client.provisioned else "no"),
        ("boot method", client.boot_method),
        ("initiator iqn", client.initiator_iqn),
        ("target iqn", client.target_iqn),
        ("chap user", client.chap_user),
        ("chap secret", secret),
        ("mutual secret", mutual),
        ("bmc", None if bmc is None else bmc.url),
        ("bmc password", bmc_password),
        ("bmc tls", bmc and bmc.trust and bmc.trust.shown),
        ("created", when(client.created)),
        ("last seen", when(client.last_seen)),
        ("last stage",
         client.last_stage and f"{client.last_stage} at {when(client.last_stage_at)}"),
    ]


@click.group()
def client() -> None:
    """Register, list, show, change and remove client machines; control their power."""


@client.command()
@click.argument("mac", type=MAC)
@click.option("--hostname", help="RFC 1123 host name (default: node-<mac>).")
@click.option("--ip", type=IPV4, help="Fixed address (default: the first free one).")
@click.option("--image", metavar="NAME[@N]",
              help="Golden image (version N, default: the newest) its root LUN is cloned "
                   "from (default: a blank LUN).")
@click.option("--size", type=SIZE,
              help="Root LUN size, e.g. 8G (default: storage.default_lun_size or the image's).")
@click.option("--boot-method", type=click.Choice([m.value for m in BootMethod]),
              default=BootMethod.INITRAMFS.value, show_default=True,
              help="initramfs: netboot's kernel and /init mount the root; sanboot: iPXE boots "
              "the LUN as a disk (an image built with --sanboot); overlay: /init mounts the "
              "image version read-only (shared) under the client's own writable layer.")
@click.option("--overlay-size", type=SIZE,
              help="An overlay client's writable upper layer, e.g. 2G (default 2G).")
@pass_app
def add(app: App, mac: str, hostname: str | None, ip: IPv4Address | None, image: str | None,
        size: int | None, boot_method: str, overlay_size: int | None) -> None:
    """Register the machine with network card MAC, make its root LUN and its target."""
    method = BootMethod(boot_method)
    with copy_progress(f"cloning {image}") as progress:
        added = add_client(app.config, app.inventory, mac, hostname=hostname, ip=ip,
                           image=image, size=size, backend=open_backend(app.config),
                           progress=progress, boot_method=method, overlay_size=overlay_size)
    click.echo(fields_table(_client_fields(app.config, added.client, show_secrets=False)))
    if method is BootMethod.OVERLAY:
        root = (f"overlay: image {added.client.image} read-only (LUN {LOWER_LUN}) under an "
                f"{added.method}")
    else:
        root = (f"cloned from image {image} by {added.method}" if image
                else "blank (no image given)")
    click.echo(f"root LUN: {root}, {format_size(added.client.lun_size)}")
    click.echo(f"target: {added.target}")


@client.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--unknown", is_flag=True, help="Machines that asked to boot but are not registered.")
@pass_app
def list_(app: App, as_json: bool, unknown: bool) -> None:
    """List registered clients (or unknown machines)."""
    if unknown:
        machines = app.inventory.unknown_machines()
        if as_json:
            emit_json([asdict(m) for m in machines])
            return
        click.echo(table(
            ["mac", "first seen", "last seen", "requests", "vendor class", "arch"],
            [(m.mac, when(m.first_seen), when(m.last_seen), m.requests, m.vendor_class, m.arch)
             for m in machines]))
        return
    clients = app.inventory.clients()
    if as_json:
        emit_json([client_json(app.config, c, show_secrets=False) for c in clients])
        return
    click.echo(table(
        ["mac", "hostname", "ip", "image", "lun size", "stage", "last seen"],
        [(c.mac, c.hostname, c.ip, c.image, format_size(c.lun_size), c.last_stage,
          when(c.last_seen)) for c in clients]))


@client.command()
@click.argument("mac", type=MAC)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@SHOW_SECRETS
@INITIATOR_CONFIG
@pass_app
def show(app: App, mac: str, as_json: bool, show_secrets: bool, initiator_config: bool) -> None:
    """Show one client."""
    found = app.inventory.get(mac)
    if initiator_config:
        click.echo(render_initiator_config(app.config, found), nl=False)
        return
    luns = extra_luns(app.inventory, mac)
    address, port = app.config.portal
    holder = portal_holder(app.inventory.servers(), time.time())
    if as_json:
        emit_json(client_detail_json(app.config, app.inventory, found, show_secrets))
        return
    pairs = _client_fields(app.config, found, show_secrets, find_bmc(app.inventory, mac))
    pairs += [(f"lun {r.lun}", f"{r.kind} {r.path} ({format_size(r.size)})") for r in luns]
    pairs.append(("portal", f"{address}:{port}, held by "
                            f"{holder.name if holder else 'no running server'}"))
    click.echo(fields_table(pairs))


@client.command()
@click.argument("mac", type=MAC)
@click.option("--purge", is_flag=True, help="Also delete its root LUN's data.")
@pass_app
def remove(app: App, mac: str, purge: bool) -> None:
    """Unregister a client (its LUN data is kept unless --purge)."""
    gone, applied = remove_client(app.config, app.inventory, mac, purge=purge,
                                  backend=open_backend(app.config))
    kept = "" if purge or not gone.lun_path else f"; its data is kept in {gone.lun_path}"
    click.echo(f"removed {gone.mac} ({gone.hostname}, {gone.ip}){kept}")
    click.echo(f"target: {applied}")


@client.command(name="set")
@click.argument("mac", type=MAC)
@click.option("--bmc", "bmc", type=BMC_URL,
              help="Its BMC, as ipmi://USER@ADDRESS[:PORT] (port 623 by default) or "
              "redfish://USER@HOST[:PORT][/redfish/v1/Systems/ID] (HTTPS, port 443 by default; "
              "without the path, the BMC's only system); the password from "
              "--bmc-password-file, else asked for.")
@click.option("--bmc-password-file", type=click.Path(path_type=Path, dir_okay=False),
              help="A file whose first line is the BMC's password (never give it on the "
              "command line).")
@click.option("--bmc-ca-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Redfish: the PEM CA certificate the BMC's certificate is checked with "
              "(kept with the BMC); by default the system's CAs.")
@click.option("--bmc-insecure", is_flag=True,
              help="Redfish: do not check the BMC's certificate (a self-signed one).")
@click.option("--no-bmc", is_flag=True, help="Forget its BMC.")
@click.option("--image", metavar="NAME[@N]",
              help="An overlay client's lower layer: the image version it boots next "
              "(NAME: its newest); its upper layer stays.")
@POWERED_OFF
@pass_app
def set_(app: App, mac: str, bmc: Bmc | None, bmc_password_file: Path | None,
         bmc_ca_file: Path | None, bmc_insecure: bool, no_bmc: bool, image: str | None,
         powered_off: bool) -> None:
    """Change a registered client: its BMC, for 'netboot client power'; an overlay client's
    image version (refused while it is logged in to its target, unless --powered-off)."""
    if bmc is not None and no_bmc:
        raise click.UsageError("--bmc and --no-bmc exclude each other")
    if bmc is None and (bmc_password_file is not None or bmc_ca_file is not None
                        or bmc_insecure):
        raise click.UsageError("--bmc-password-file, --bmc-ca-file and --bmc-insecure go "
                               "with --bmc")
    if image is not None:
        if bmc is not None or no_bmc:
            raise click.UsageError("--image goes alone (set the BMC in another call)")
        done = set_lower(app.config, app.inventory, mac, image,
                         backend=open_backend(app.config), powered_off=powered_off)
        click.echo(f"{done.client.hostname} ({mac}): {done.done}")
        click.echo(f"target: {done.applied}")
        return
    if no_bmc:
        removed = remove_client_bmc(app.inventory, mac)
        click.echo(f"{mac}: BMC removed" if removed else f"{mac}: had no BMC")
        return
    if bmc is None:
        raise click.UsageError("nothing to change: give --bmc URL, --no-bmc or --image")
    bmc = with_tls(bmc, bmc_ca_file and read_ca_file(bmc_ca_file), bmc_insecure)
    app.inventory.get(mac)  # an unknown client is said before the password is asked
    if bmc_password_file is not None:
        password = read_password_file(bmc_password_file, bmc.kind)
    else:
        password = check_password(click.prompt(f"password of {bmc.username} on BMC {bmc.where}",
                                               hide_input=True, err=True), bmc.kind)
    set_client_bmc(app.inventory, mac, replace(bmc, password=password))
    click.echo(f"{mac}: BMC {bmc.url}" + (f" (TLS: {bmc.trust.shown})" if bmc.trust else ""))


@client.command(name="power")
@click.argument("macs", nargs=-1, required=True, type=MAC, metavar="MAC...")
@click.argument("action", type=click.Choice([a.value for a in PowerAction]))
@click.option("--hard", is_flag=True,
              help="With off: cut the power at once, without asking the OS to shut down.")
@click.option("--soft-timeout", type=click.FloatRange(0), default=SOFT_TIMEOUT,
              show_default=True, metavar="S",
              help="With off: seconds the OS gets to shut down before the power is cut.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def power(app: App, macs: tuple[str, ...], action: str, hard: bool, soft_timeout: float,
          as_json: bool) -> None:
    """Power clients on, off, cycle them or show their power, through their BMCs.

    off: the OS is asked to shut down (ACPI, IPMI's "chassis power soft"), and the power
    cut if it is not off within --soft-timeout; cycle: next boot from the network, then off
    and on (on, if it was off); pxe: next boot from the network only. Exit status 1 if any
    client failed.
    """
    if hard and action != PowerAction.OFF:
        raise click.UsageError("--hard goes with off")
    done = power_clients(app.inventory, list(dict.fromkeys(macs)), PowerAction(action),
                         partial(power_through, hard=hard, soft_timeout=soft_timeout))
    if as_json:
        emit_json([{"mac": d.mac, "bmc": d.bmc, "action": action, "ok": d.ok,
                    "power": d.result.state.value if d.result and d.result.state else None,
                    "done": d.result.done if d.result else None, "error": d.error}
                   for d in done])
    elif len(done) == 1:
        one = done[0]
        if one.result is None:
            raise click.ClickException(one.error or "failed")
        click.echo(f"{one.mac}: power {one.result.state}" if action == PowerAction.STATUS
                   else f"{one.mac}: {one.result.done}")
    else:
        click.echo(table(["mac", "bmc", "power", "done"],
                         [(d.mac, d.bmc, d.result and d.result.state,
                           d.result.done if d.result else f"FAILED: {d.error}") for d in done]))
    failed = [d for d in done if not d.ok]
    if failed:
        if not as_json:
            click.echo(f"{len(failed)} of {len(done)} clients failed", err=True)
        raise SystemExit(1)


@client.command()
@click.argument("mac", type=MAC)
@click.option("--image", metavar="NAME[@N]",
              help="The image version to clone the new root from (NAME: its newest).")
@click.option("--undo", is_flag=True, help="Put the previous root back; delete the new one.")
@click.option("--purge", is_flag=True,
              help="Delete the previous root (the reimage can no longer be undone).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def reimage(app: App, mac: str, image: str | None, undo: bool, purge: bool,
            as_json: bool) -> None:
    """Give a full-clone client (methods initramfs and sanboot) a new root cloned from
    --image, keeping its current root as the previous one until --undo or --purge.
    Refused while the client is logged in to its target: power it off first."""
    if [image is not None, undo, purge].count(True) != 1:
        raise click.UsageError("give exactly one of --image NAME[@N], --undo or --purge")
    if image is not None:
        with copy_progress(f"cloning {image}") as progress:
            done = reimage_client(app.config, app.inventory, mac, image,
                                  backend=open_backend(app.config), progress=progress)
    elif undo:
        done = undo_reimage(app.config, app.inventory, mac, backend=open_backend(app.config))
    else:
        done = purge_previous(app.config, app.inventory, mac)
    if as_json:
        emit_json(client_json(app.config, done.client, False) | {"done": done.done,
                                              "target": str(done.applied)})
        return
    click.echo(f"{done.client.hostname} ({mac}): {done.done}")
    click.echo(f"target: {done.applied}")


@client.command()
@click.argument("mac", type=MAC)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@POWERED_OFF
@pass_app
def reset(app: App, mac: str, yes: bool, powered_off: bool) -> None:
    """Empty an overlay client's upper layer: everything it wrote, its identity too, is gone
    at its next boot. Refused while it is logged in to its target, unless --powered-off."""
    found = app.inventory.get(mac)
    if not yes:
        click.confirm(f"empty the upper layer of {found.hostname} ({mac}), deleting "
                      "everything it wrote?", abort=True, err=True)
    done = reset_upper(app.config, app.inventory, mac, backend=open_backend(app.config),
                       powered_off=powered_off)
    click.echo(f"{done.client.hostname} ({mac}): {done.done}")
    click.echo(f"target: {done.applied}")
