"""A client's root LUN: made by the store (a clone of a golden image, or blank), all or nothing.

The order makes every crash harmless. Under the client's provisioning lock
(``<luns>/.<hostname>.lock``, held by the adding process):

1. the record is inserted with ``provisioned = 0`` and the root's location
   (reconcile gives such a client no target);
2. the store makes the root there (:meth:`netboot.storage.backend.Storage.make_root`:
   a file under a temporary name renamed into place, or an RBD clone);
3. the record is marked provisioned.

A process killed anywhere in between leaves a record that is not
provisioned and a lock nobody holds; :func:`recover_interrupted` (run by
every ``client add`` and at every ``serve`` start) removes what the store holds
at that record's location, then the record, so the next start shows no client,
no clone, no target and no temporary file. It also removes the root a killed
``client reimage`` was making (:mod:`netboot.provisioning.reimage`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netboot.config import Config
from netboot.host.files import file_lock
from netboot.inventory.store import Inventory
from netboot.log import client_log
from netboot.storage.backend import open_storage, store_of
from netboot.storage.location import Location
from netboot.storage.model import StorageError

log = logging.getLogger(__name__)


def _lock_path(config: Config, hostname: str) -> Path:
    return config.storage.luns / f".{hostname}.lock"


@contextmanager
def provisioning_lock(config: Config, hostname: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the client's provisioning lock; yields False when ``wait`` is off and it is taken."""
    with file_lock(_lock_path(config, hostname), wait=wait) as held:
        yield held


def recover_interrupted(config: Config, inventory: Inventory) -> list[str]:
    """Delete what a killed ``client add`` left: its unfinished record, its root, temp files.

    A record that is not provisioned and whose provisioning lock is free
    belongs to a process that died; one whose lock is held is still being made.
    """
    recovered = []
    for client in inventory.unsettled_clients():
        if client.provisioned:
            continue
        with provisioning_lock(config, client.hostname, wait=False) as free:
            if not free:
                continue
            gone = inventory.find(client.mac)
            if gone is None or gone.provisioned:
                continue
            if client.lun_path:
                location = Location.parse(client.lun_path)
                try:
                    store_of(config, location).remove_abandoned(location)
                except StorageError as err:  # kept (no target, unprovisioned) for the next try
                    client_log(log, client.mac).warning(
                        "could not remove the root of %s yet: %s", client.hostname, err)
                    continue
            inventory.delete(client.mac)
            client_log(log, client.mac).warning(
                "removed %s: its provisioning was interrupted", client.hostname)
            recovered.append(client.mac)
    recovered += recover_interrupted_swap(config, inventory)
    open_storage(config).recover()
    return recovered


def recover_interrupted_swap(config: Config, inventory: Inventory) -> list[str]:
    """Delete the roots a killed ``client reimage`` or ``client reset`` was making for a
    client (``next_lun_path`` set, its lock free)."""
    recovered = []
    for client in inventory.unsettled_clients():
        if client.next_lun_path is None:
            continue
        with provisioning_lock(config, client.hostname, wait=False) as free:
            if not free or inventory.get(client.mac).next_lun_path is None:
                continue
            location = Location.parse(client.next_lun_path)
            try:
                store_of(config, location).remove_abandoned(location)
            except StorageError as err:
                client_log(log, client.mac).warning(
                    "could not remove the root an interrupted reimage or reset of %s made yet: %s",
                    client.hostname, err)
                continue
            inventory.update(client.mac, next_lun_path=None)
            client_log(log, client.mac).warning(
                "removed %s: the reimage or reset of %s making it was interrupted", location,
                client.hostname)
            recovered.append(client.mac)
    return recovered
