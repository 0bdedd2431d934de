"""Registering and removing clients: the rules that turn CLI arguments into a record,
a root LUN and a target.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from ipaddress import IPv4Address

from netboot import names
from netboot.config import Config, Loader, StorageKind
from netboot.errors import NotFound, ValidationError
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.store import Inventory
from netboot.log import client_log
from netboot.provisioning import chap
from netboot.provisioning.addresses import check_address, pick_address
from netboot.provisioning.root import provisioning_lock, recover_interrupted
from netboot.storage.backend import Storage, open_storage, store_of
from netboot.storage.clone import Progress
from netboot.storage.images import Image, Layout, get_image
from netboot.storage.location import Location
from netboot.target import GLOBAL, TargetBackend, TargetError, TargetUnreachable
from netboot.target.reconcile import reconcile

log = logging.getLogger(__name__)

OVERLAY_SIZE = 2 << 30  # an overlay client's upper layer without --overlay-size


@dataclass(frozen=True)
class Applied:
    """Whether the target already reflects a change, or why it will only later."""

    done: bool
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class Added:
    """A new client, how its root was made, and whether its target is up."""

    client: Client
    method: str  # how the store made the root (a reflink, an RBD clone, blank, ...)
    target: Applied


def apply_targets(config: Config, inventory: Inventory, backend: TargetBackend | None,
                  iqn: str | None = None) -> Applied:
    """Bring the target in step now if tgtd answers; else say serve's reconcile will.

    Raises TargetError when the target ``iqn`` itself could not be made.
    """
    if backend is None:
        return Applied(False, "not applied (target.manage is off: the LUNs are served elsewhere)")
    try:
        outcome = reconcile(config, inventory, backend)
    except TargetUnreachable as err:
        return Applied(False, f"pending: {err}; `netboot serve` applies it when it runs")
    if iqn is not None and iqn in outcome.failed:
        raise TargetError(f"target {iqn}: {outcome.failed[iqn]}")
    if GLOBAL in outcome.failed:
        return Applied(True, f"applied; but {outcome.failed[GLOBAL]}")
    return Applied(True, "applied")


def add_client(
    config: Config,
    inventory: Inventory,
    mac: str,
    *,
    hostname: str | None = None,
    ip: IPv4Address | None = None,
    image: str | None = None,
    size: int | None = None,
    backend: TargetBackend | None = None,
    progress: Progress | None = None,
    boot_method: BootMethod = BootMethod.INITRAMFS,
    overlay_size: int | None = None,
) -> Added:
    """Register a client, make its root LUN and its target; all of it or nothing.

    ``mac`` must already be normalised. The address is chosen while the write
    lock is held, so concurrent adds never pick the same one. Without
    ``image`` the root LUN is a blank sparse file (for an installer to fill).
    An overlay client's LUN 1 is its empty upper layer of ``overlay_size`` bytes
    (default :data:`OVERLAY_SIZE`); its lower layer is the image version itself.
    """
    host = names.validate_hostname(hostname) if hostname else names.hostname_for_mac(mac)
    authority = config.target.iqn_authority
    overlay = boot_method is BootMethod.OVERLAY
    golden = get_image(config, image) if image else None
    check_boot_method(boot_method, golden, config.boot.loader)
    if overlay:
        if size is not None:
            raise ValidationError("an overlay client's LUN is its upper layer: give its size "
                                  "with --overlay-size, not --size")
    elif overlay_size is not None:
        raise ValidationError("--overlay-size is for --boot-method overlay")
    storage = open_storage(config)
    if overlay:
        lun_size = overlay_size if overlay_size is not None else OVERLAY_SIZE
    else:
        lun_size = size if size is not None else default_root_size(config, storage, golden)
    if lun_size < 1 << 20:
        raise ValidationError(f"LUN size {lun_size} is too small (at least 1M)")
    if golden and not overlay and lun_size < golden.size:
        raise ValidationError(f"LUN size {lun_size} is smaller than image {image} "
                              f"({golden.size} bytes)")
    recover_interrupted(config, inventory)
    secret, mutual = chap.new_secret_pair()
    final = storage.root_location(host)
    logger = client_log(log, mac)
    with provisioning_lock(config, host):
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
                image=golden.ref if golden else None,
                lun_path=str(final),
                lun_size=lun_size,
                initiator_iqn=names.initiator_iqn(authority, host),
                target_iqn=names.target_iqn(authority, host),
                chap_user=host,
                chap_secret=secret,
                mutual_secret=mutual,
                boot_method=boot_method,
                created=time.time(),
            )
            inventory.insert(db, client)
        logger.info("registered %s as %s (%s); making its root LUN", mac, host, ip)
        made = False
        try:
            method = storage.make_upper(final, lun_size) if overlay else \
                storage.make_root(final, golden, lun_size, progress)
            made = True
            client = inventory.update(mac, provisioned=True)
            applied = apply_targets(config, inventory, backend, client.target_iqn)
        except BaseException:
            _undo(config, inventory, client, backend, storage if made else None)
            raise
    logger.info("provisioned %s: root LUN %s (%s), target %s", host, final, method, applied)
    return Added(client, method, applied)


def default_root_size(config: Config, storage: Storage, golden: Image | None) -> int:
    """A root's size when none is asked for: ``storage.default_lun_size``, or the image's
    if larger; a disk image on RBD keeps its own (see RbdStore.make_root)."""
    if golden is not None and golden.layout is Layout.DISK and storage.kind is StorageKind.RBD:
        return golden.size
    return max(config.storage.default_lun_size, golden.size if golden else 0)


def check_boot_method(method: BootMethod, golden: Image | None,
                      loader: Loader = Loader.IPXE) -> None:
    """Refuse a method the image cannot boot by, before anything is made.

    netboot's /init mounts an ext4 filesystem; iPXE sanboot boots a disk with a
    partition table and a boot loader.
    """
    if method is BootMethod.SANBOOT:
        if loader is not Loader.IPXE:
            raise ValidationError(f"--boot-method sanboot needs boot.loader: ipxe (it is {loader}; "
                                  "of the loaders, only iPXE logs in to an iSCSI target)")
        if golden is None:
            raise ValidationError("--boot-method sanboot needs --image: a disk image built with "
                                  "`netboot image build NAME --debootstrap SUITE --sanboot`")
        if golden.layout is not Layout.DISK:
            raise ValidationError(
                f"image {golden.name} is an ext4 filesystem, not a bootable disk: "
                "--boot-method sanboot needs an image built with "
                "`netboot image build NAME --debootstrap SUITE --sanboot`")
    elif method is BootMethod.OVERLAY and golden is None:
        raise ValidationError("--boot-method overlay needs --image: its root's read-only "
                              "lower layer is that image version")
    elif golden is not None and golden.layout is not Layout.FILESYSTEM:
        raise ValidationError(f"image {golden.name} is a bootable disk ({golden.layout.value}), "
                              "which netboot's /init cannot mount: use --boot-method sanboot")


def _undo(config: Config, inventory: Inventory, client: Client,
          backend: TargetBackend | None, storage: Storage | None) -> None:
    """Take back a failed add: record, root (``storage``: the one this add made; None:
    none was made, and what is there is not this add's), and any part of its target."""
    with suppress(NotFound):
        inventory.delete(client.mac)
    try:
        apply_targets(config, inventory, backend)
    except TargetError as err:
        client_log(log, client.mac).error("could not remove the failed target: %s", err)
    if storage is not None and client.lun_path:
        storage.remove(Location.parse(client.lun_path))
    client_log(log, client.mac).warning("add of %s failed; nothing of it was kept",
                                        client.hostname)


def remove_client(config: Config, inventory: Inventory, mac: str, *, purge: bool = False,
                  backend: TargetBackend | None = None) -> tuple[Client, Applied]:
    """Delete a client's record and its target; with ``purge`` also its root LUN (a file or
    an RBD clone).

    Extra LUNs' files, devices and RBD images are the admin's and are never deleted.
    """
    client = inventory.delete(mac)
    applied = apply_targets(config, inventory, backend)
    if purge and client.lun_path:
        location = Location.parse(client.lun_path)
        store_of(config, location).remove(location)
    client_log(log, mac).info("removed %s%s; target %s", client.hostname,
                              " and its root LUN" if purge else "", applied)
    return client, applied
