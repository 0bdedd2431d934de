"""Registering and removing clients: the rules that turn CLI arguments into a record."""

from __future__ import annotations

import logging
import time
from ipaddress import IPv4Address
from pathlib import Path

from netboot import chap, names
from netboot.addresses import check_address, pick_address
from netboot.config import Config
from netboot.errors import ValidationError
from netboot.inventory import Client, Inventory
from netboot.log import client_log

log = logging.getLogger(__name__)


def add_client(
    config: Config,
    inventory: Inventory,
    mac: str,
    *,
    hostname: str | None = None,
    ip: IPv4Address | None = None,
    image: str | None = None,
    size: int | None = None,
) -> Client:
    """Validate, allocate an address and insert a new client in one transaction.

    ``mac`` must already be normalised. The address is chosen while the
    write lock is held, so concurrent adds never pick the same one.
    """
    host = names.validate_hostname(hostname) if hostname else names.hostname_for_mac(mac)
    authority = config.target.iqn_authority
    lun_size = size if size is not None else config.storage.default_lun_size
    if lun_size < 1 << 20:
        raise ValidationError(f"LUN size {lun_size} is too small (at least 1M)")
    secret, mutual = chap.new_secret_pair()
    with inventory.transaction() as db:
        taken = inventory.taken_addresses(db)
        reserved = config.reserved_addresses()
        if ip is None:
            ip = pick_address(config.dhcp.subnet, reserved, config.dhcp.dynamic_range, taken)
        else:
            check_address(ip, config.dhcp.subnet, reserved, config.dhcp.dynamic_range)
        client = Client(
            mac=mac,
            hostname=host,
            ip=ip,
            image=image,
            lun_path=None,
            lun_size=lun_size,
            initiator_iqn=names.initiator_iqn(authority, host),
            target_iqn=names.target_iqn(authority, host),
            chap_user=host,
            chap_secret=secret,
            mutual_secret=mutual,
            created=time.time(),
        )
        inventory.insert(db, client)
    client_log(log, mac).info("registered %s as %s (%s)", mac, host, ip)
    return client


def remove_client(inventory: Inventory, mac: str, *, purge: bool = False) -> Client:
    """Delete a client's record; with ``purge`` also its root LUN's file."""
    client = inventory.delete(mac)
    if purge and client.lun_path:
        Path(client.lun_path).unlink(missing_ok=True)
    client_log(log, mac).info("removed %s%s", client.hostname, " and its LUN" if purge else "")
    return client
