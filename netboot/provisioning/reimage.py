"""``client reimage``: a full-clone client's root cloned afresh from another image version;
the root it had is kept until ``--undo`` puts it back or ``--purge`` deletes it.

A full clone cannot be rebased onto a new image version: what the client wrote lives
in its own copy of the whole filesystem. So a reimage makes a new root and keeps the old
one beside it, whole, as the way back. Under the client's provisioning lock:

1. the new root's location is recorded (``next_lun_path``);
2. the store makes it there (a clone of the image version, grown to the client's size);
3. one update swaps: the old root and image version become ``previous_*``, the new ones
   current, ``next_lun_path`` is cleared; then the target is brought in step.

A process killed before 3 leaves ``next_lun_path`` set and a lock nobody holds:
:func:`recover_interrupted_swap` removes that root and clears it; the client's own
root was never touched. A reimage is refused while the client is logged in to its
target: its running system would lose its root under it (power it off first). A
caller that powered the machine off through its BMC says so (``powered_off``): a
session tgtd still lists is then a dead one, which the target's update closes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from netboot.config import Config
from netboot.errors import Conflict, ValidationError
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.store import Inventory
from netboot.log import client_log
from netboot.provisioning.clients import Applied, apply_targets, check_boot_method
from netboot.provisioning.root import provisioning_lock, recover_interrupted_swap
from netboot.storage.backend import describe, open_storage, store_of
from netboot.storage.clone import Progress
from netboot.storage.images import get_image
from netboot.storage.location import Location
from netboot.target.backend import TargetBackend
from netboot.target.model import TargetUnreachable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reimaged:
    """What a reimage, undo or purge did."""

    client: Client
    done: str  # for people: what was made, put back or deleted
    applied: Applied


def refuse_while_logged_in(client: Client, backend: TargetBackend | None,
                            powered_off: bool) -> None:
    if backend is None or powered_off:
        return
    try:
        targets = backend.targets()
    except TargetUnreachable:
        return  # no tgtd: nobody is logged in
    for target in targets:
        if target.iqn == client.target_iqn and target.logins:
            raise Conflict(f"{client.hostname} is logged in to its target from "
                           f"{target.logins[0].address or 'an initiator'} (running?): "
                           f"its root cannot change under it; power it off first "
                           f"(`netboot client power {client.mac} off`)")


def reimage_client(config: Config, inventory: Inventory, mac: str, image: str, *,
                   backend: TargetBackend | None, progress: Progress | None = None,
                   powered_off: bool = False) -> Reimaged:
    """Give client ``mac`` a new root cloned from ``image`` (``NAME`` or ``NAME@N``),
    keeping the one it has as its previous root."""
    client = inventory.get(mac)
    if client.boot_method is BootMethod.OVERLAY:
        raise ValidationError(f"{client.hostname} is an overlay client: its root is no clone, "
                              f"so `netboot client set {mac} --image {image}` moves its lower "
                              "layer and keeps its upper")
    if client.previous_lun_path is not None:
        raise Conflict(f"{client.hostname} still keeps its previous root "
                       f"({describe(Location.parse(client.previous_lun_path))}, image "
                       f"{client.previous_image or 'none'}): `netboot client reimage {mac} "
                       "--undo` puts it back, `--purge` deletes it")
    golden = get_image(config, image)
    check_boot_method(client.boot_method, golden, config.boot.loader)
    if client.lun_size < golden.size:
        raise ValidationError(f"image {golden.ref} ({golden.size} bytes) is larger than the "
                              f"root LUN of {client.hostname} ({client.lun_size} bytes)")
    refuse_while_logged_in(client, backend, powered_off)
    recover_interrupted_swap(config, inventory)
    storage = open_storage(config)
    location = storage.root_location(f"{client.hostname}.r{time.time_ns():x}")
    logger = client_log(log, mac)
    with provisioning_lock(config, client.hostname):
        inventory.update(mac, next_lun_path=str(location))
        try:
            method = storage.make_root(location, golden, client.lun_size, progress)
        except BaseException:
            inventory.update(mac, next_lun_path=None)
            raise
        client = inventory.update(mac, previous_image=client.image,
                                  previous_lun_path=client.lun_path, image=golden.ref,
                                  lun_path=str(location), next_lun_path=None)
    applied = apply_targets(config, inventory, backend, client.target_iqn)
    logger.info("reimaged %s from %s: root LUN %s (%s); previous root %s kept; target %s",
                client.hostname, golden.ref, location, method, client.previous_lun_path,
                applied)
    return Reimaged(client, f"root {describe(location)} cloned from {golden.ref} ({method}); "
                    f"previous root kept until --undo or --purge", applied)


def undo_reimage(config: Config, inventory: Inventory, mac: str, *,
                 backend: TargetBackend | None, powered_off: bool = False) -> Reimaged:
    """Put back the root a reimage kept; the one it made is deleted."""
    client = inventory.get(mac)
    if client.previous_lun_path is None:
        raise Conflict(f"{client.hostname} keeps no previous root: nothing to undo")
    refuse_while_logged_in(client, backend, powered_off)
    made = client.lun_path
    with provisioning_lock(config, client.hostname):
        client = inventory.update(mac, image=client.previous_image,
                                  lun_path=client.previous_lun_path, previous_image=None,
                                  previous_lun_path=None)
    applied = apply_targets(config, inventory, backend, client.target_iqn)
    if made is not None:
        location = Location.parse(made)
        store_of(config, location).remove(location)
    client_log(log, mac).info("%s is back on its previous root %s (%s); %s deleted; "
                              "target %s", client.hostname, client.lun_path, client.image,
                              made, applied)
    return Reimaged(client, f"back on root {describe(Location.parse(str(client.lun_path)))} "
                    f"({client.image or 'no image'})", applied)


def purge_previous(config: Config, inventory: Inventory, mac: str) -> Reimaged:
    """Delete the root a reimage kept: the reimage can no longer be undone."""
    client = inventory.get(mac)
    if client.previous_lun_path is None:
        raise Conflict(f"{client.hostname} keeps no previous root: nothing to purge")
    location = Location.parse(client.previous_lun_path)
    with provisioning_lock(config, client.hostname):
        client = inventory.update(mac, previous_image=None, previous_lun_path=None)
    store_of(config, location).remove(location)
    client_log(log, mac).info("deleted the previous root %s of %s", location, client.hostname)
    return Reimaged(client, f"previous root {describe(location)} deleted",
                    Applied(False, "unchanged"))
