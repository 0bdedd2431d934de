"""Overlay clients: the image version under their root (``client set --image``) and their
upper layer made empty again (``client reset``).

An overlay client's root is an overlayfs: its lower layer is an image version, exported
read-only to every client on it (:data:`netboot.inventory.luns.LOWER_LUN`), its upper
layer its own LUN 1. Moving it to another version changes only the record and the target
(the upper, with everything the client wrote, stays); a reset swaps its upper for an
empty one. Both are refused while the client is logged in to its target, as a reimage
is: its running system would lose a layer under it. A caller that powered the machine
off says so (``powered_off``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from netboot.config import Config
from netboot.errors import ValidationError
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.store import Inventory
from netboot.log import client_log
from netboot.provisioning.clients import Applied, apply_targets, check_boot_method
from netboot.provisioning.reimage import refuse_while_logged_in
from netboot.provisioning.root import provisioning_lock, recover_interrupted_swap
from netboot.storage.backend import describe, open_storage, store_of
from netboot.storage.images import get_image
from netboot.storage.location import Location
from netboot.target.backend import TargetBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Changed:
    """What a version change or reset did."""

    client: Client
    done: str  # for people
    applied: Applied


def _overlay_client(inventory: Inventory, mac: str, what: str) -> Client:
    client = inventory.get(mac)
    if client.boot_method is not BootMethod.OVERLAY:
        raise ValidationError(f"{client.hostname} boots by {client.boot_method} (a full clone): "
                              f"{what} is for overlay clients; `netboot client reimage` gives "
                              "a full clone a new root")
    return client


def set_lower(config: Config, inventory: Inventory, mac: str, image: str, *,
              backend: TargetBackend | None, powered_off: bool = False) -> Changed:
    """Put overlay client ``mac`` on image version ``image`` (``NAME`` or ``NAME@N``) at
    its next boot; its upper layer stays."""
    client = _overlay_client(inventory, mac, "--image")
    golden = get_image(config, image)
    check_boot_method(client.boot_method, golden, config.boot.loader)
    if golden.ref == client.image:
        return Changed(client, f"already on {golden.ref}", Applied(True, "unchanged"))
    refuse_while_logged_in(client, backend, powered_off)
    before = client.image
    with provisioning_lock(config, client.hostname):
        client = inventory.update(mac, image=golden.ref)
    applied = apply_targets(config, inventory, backend, client.target_iqn)
    client_log(log, mac).info("%s: lower layer %s -> %s (upper kept); target %s",
                              client.hostname, before, golden.ref, applied)
    return Changed(client, f"lower layer {before} -> {golden.ref}, upper layer kept", applied)


def reset_upper(config: Config, inventory: Inventory, mac: str, *,
                backend: TargetBackend | None, powered_off: bool = False) -> Changed:
    """Give overlay client ``mac`` an empty upper layer of the same size: everything it
    wrote (its identity too) is gone at its next boot.

    The new upper is made beside the old one under a new name, recorded as the root being
    made first (``next_lun_path``, which a killed reset leaves for
    :func:`netboot.provisioning.root.recover_interrupted_swap`), then swapped in; the
    target's LUN 1 changes path, so tgtd lets go of the old file, which is then deleted.
    """
    client = _overlay_client(inventory, mac, "reset")
    assert client.lun_path is not None
    refuse_while_logged_in(client, backend, powered_off)
    recover_interrupted_swap(config, inventory)
    storage = open_storage(config)
    old = Location.parse(client.lun_path)
    new = storage.root_location(f"{client.hostname}.u{time.time_ns():x}")
    with provisioning_lock(config, client.hostname):
        inventory.update(mac, next_lun_path=str(new))
        try:
            storage.make_upper(new, client.lun_size)
        except BaseException:
            inventory.update(mac, next_lun_path=None)
            raise
        client = inventory.update(mac, lun_path=str(new), next_lun_path=None)
    applied = apply_targets(config, inventory, backend, client.target_iqn)
    store_of(config, old).remove(old)
    client_log(log, mac).info("%s: empty upper layer %s, %s deleted; target %s",
                              client.hostname, new, old, applied)
    return Changed(client, f"empty upper layer {describe(new)} ({describe(old)} deleted)",
                   applied)
