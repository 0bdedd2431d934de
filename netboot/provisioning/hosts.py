"""Registering and removing SAN hosts: servers that keep booting from their own disks and
use LUNs on a target of their own (``netboot host``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from netboot import names
from netboot.config import Config
from netboot.inventory.hosts import Host, delete_host, insert_host
from netboot.inventory.luns import LunOwner, LunRecord, OwnerKind, luns_of
from netboot.inventory.store import Inventory
from netboot.provisioning import chap
from netboot.provisioning.clients import Applied, apply_targets
from netboot.target import TargetBackend, TargetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removed:
    """A removed host, the LUNs it had (their data is kept) and whether its target is gone."""

    host: Host
    luns: tuple[LunRecord, ...]
    target: Applied


def add_host(config: Config, inventory: Inventory, name: str, initiator_iqn: str, *,
             backend: TargetBackend | None = None) -> tuple[Host, Applied]:
    """Register a host and make its target (no LUNs yet: ``lun add`` gives them); all of it
    or nothing.

    Its target's IQN and CHAP account are named after it as a client's are after
    its hostname; the secrets are made as a client's (:mod:`netboot.provisioning.chap`).
    """
    name = names.validate_host_name(name)
    secret, mutual = chap.new_secret_pair()
    host = Host(name=name, initiator_iqn=names.validate_iqn(initiator_iqn),
                target_iqn=names.target_iqn(config.target.iqn_authority, name),
                chap_user=name, chap_secret=secret, mutual_secret=mutual, created=time.time())
    with inventory.transaction() as db:
        insert_host(db, host, discovery_secret=chap.new_secret())
    try:
        applied = apply_targets(config, inventory, backend, host.target_iqn)
    except BaseException:
        with inventory.transaction() as db:
            delete_host(db, name)
        try:
            apply_targets(config, inventory, backend)
        except TargetError as err:
            log.error("could not remove the failed target of SAN host %s: %s", name, err)
        raise
    log.info("registered SAN host %s (initiator %s), target %s", name, host.initiator_iqn,
             applied)
    return host, applied


def remove_host(config: Config, inventory: Inventory, name: str, *,
                backend: TargetBackend | None = None) -> Removed:
    """Delete a host's record, its LUN records and its target.

    Its LUNs' files, devices and RBD images are the admin's, as a client's added
    LUNs are, and are never deleted.
    """
    with inventory.transaction() as db:
        luns = tuple(luns_of(inventory, LunOwner(OwnerKind.HOST, name)))
        host = delete_host(db, name)
    applied = apply_targets(config, inventory, backend)
    log.info("removed SAN host %s; target %s", name, applied)
    return Removed(host, luns, applied)
