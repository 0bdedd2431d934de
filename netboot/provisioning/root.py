"""A client's root LUN: cloned from a golden image (or blank), grown, and put in place atomically.

The order makes every crash harmless. Under the client's provisioning lock
(``<luns>/.<hostname>.lock``, held by the adding process):

1. the record is inserted with ``provisioned = 0`` (reconcile gives such a
   client no target);
2. the root is cloned under a temporary name, grown, synced, renamed to
   ``<luns>/<hostname>.img``;
3. the record is marked provisioned.

A process killed anywhere in between leaves a record that is not
provisioned and a lock nobody holds; :func:`recover_interrupted` (run by
every ``client add`` and at every ``serve`` start) deletes such a record and its
files, so the next start shows no client, no target and no temporary file.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netboot.config import Config
from netboot.host.files import atomic_path, create_sparse, remove_stale_temps
from netboot.inventory.store import Inventory
from netboot.log import client_log
from netboot.storage.clone import Method, Progress, clone_file, grow_disk, grow_ext4
from netboot.storage.images import Image, Layout

log = logging.getLogger(__name__)


def root_lun_path(config: Config, hostname: str) -> Path:
    return config.storage.luns / f"{hostname}.img"


def _lock_path(config: Config, hostname: str) -> Path:
    return config.storage.luns / f".{hostname}.lock"


@contextmanager
def provisioning_lock(config: Config, hostname: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the client's provisioning lock; yields False when ``wait`` is off and it is taken."""
    path = _lock_path(config, hostname)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def make_root(config: Config, final: Path, image: Image | None, size: int,
              progress: Progress | None = None) -> Method | None:
    """Create ``final``: a clone of ``image`` grown to ``size``, or a blank sparse file.

    Returns how the image was copied (None for a blank LUN). Never leaves a
    partial ``final``: everything happens under a temporary name first.
    """
    with atomic_path(final) as temp:
        if image is None:
            create_sparse(temp, size)
            method = None
        else:
            method = clone_file(image.path, temp, progress)
            (grow_disk if image.layout is Layout.DISK else grow_ext4)(temp, size)
    return method


def recover_interrupted(config: Config, inventory: Inventory) -> list[str]:
    """Delete what a killed ``client add`` left: its unfinished record, root file, temp files.

    A record that is not provisioned and whose provisioning lock is free
    belongs to a process that died; one whose lock is held is still being made.
    """
    recovered = []
    for client in inventory.clients():
        if client.provisioned:
            continue
        with provisioning_lock(config, client.hostname, wait=False) as free:
            if not free:
                continue
            gone = inventory.find(client.mac)
            if gone is None or gone.provisioned:
                continue
            inventory.delete(client.mac)
            if client.lun_path:
                Path(client.lun_path).unlink(missing_ok=True)
            client_log(log, client.mac).warning(
                "removed %s: its provisioning was interrupted", client.hostname)
            recovered.append(client.mac)
    if config.storage.luns.is_dir():
        for path in remove_stale_temps(config.storage.luns):
            log.warning("removed %s left by an interrupted clone", path)
    return recovered
