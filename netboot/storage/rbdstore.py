"""The RBD store: golden images in a Ceph pool with a snapshot per version, client roots as
thin clones of the newest one, through Ceph's own bindings (python3-rados, python3-rbd).

Names in the pool: ``image.<name>`` with snapshots ``v1``, ``v2``, ... (each
protected: clones hang from them; an overlay client's lower layer is one, served
read-only as ``POOL/image.<name>@v<N>``), ``root.<hostname>`` for a client's root
(an overlay client's upper layer), and ``tmp.<name>.<host>.<pid>`` for an image or
upper layer being made. A new image is written under its temporary name,
snapshotted and renamed into place, so a killed import leaves a ``tmp.`` image
that :meth:`RbdStore.recover` removes once its process is gone; a version added
to an existing image is written to that image's head first and becomes a version
only when its snapshot exists.

A root is cloned at the image's size and grown with ``resize``; the ext4 inside
grows at the client's first boot (netboot's /init runs ``resize2fs`` online),
because this server has no kernel block device for an RBD image. Every root
and LUN made here has librbd's cache off (the per-image override
``conf_rbd_cache``): two targets may export one image during a failover, and a
write the initiator was told is done must be in the cluster.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import rados
import rbd

from netboot.config import Config, RbdConfig, StorageKind
from netboot.errors import Conflict, ValidationError
from netboot.host.files import remove_stale_temps, temp_path
from netboot.names import validate_image_name
from netboot.storage.clone import Progress, data_extents
from netboot.storage.filestore import empty_upper
from netboot.storage.location import Location, rbd_location
from netboot.storage.model import HEAD_BYTES, Image, ImageRef, Layout, StorageError, layout_of

log = logging.getLogger(__name__)

IMAGE_PREFIX = "image."
ROOT_PREFIX = "root."
TEMP_PREFIX = "tmp."
VERSION = re.compile(r"^v(\d+)$")
MADE_KEY = "netboot.made."  # image metadata: how version v<N> was made, under this + "v<N>"
CHUNK = 4 << 20  # RBD's default object size: a write of one whole object at a time
FENCE_SETTLE = 10.0  # seconds a fenced watch may take to go (the OSD learning the blocklist)
FENCE_SECONDS = 3600.0  # how long a fenced client stays blocklisted (Ceph's default)
CONNECT_TIMEOUT = 15  # seconds to reach the monitors before giving up
# librbd reads per-image config overrides from metadata keys "conf_<option>"
# (what `rbd config image set IMAGE rbd_cache false` writes).
NO_CACHE = ("conf_rbd_cache", "false")


class ImageBusyError(StorageError):
    """An RBD image is still open by some client (a target, or a process that died)."""


def _version_name(number: int) -> str:
    return f"v{number}"


_connections: dict[tuple[Path, str, int], rados.Rados] = {}
_connections_lock = threading.Lock()


def _where(conf: Path, client_id: str) -> str:
    return f"Ceph ({conf}, client.{client_id})"


def _connection(conf: Path, client_id: str) -> rados.Rados:
    """One connection to the cluster per process and identity, made at first use and kept:
    a connection costs ~30 ms (monitor session, maps), several per command otherwise.
    A forked child makes its own (librados' threads do not survive a fork)."""
    key = (conf, client_id, os.getpid())
    with _connections_lock:
        cluster = _connections.get(key)
        if cluster is not None and cluster.state == "connected":
            return cluster
        if not conf.is_file():
            raise StorageError(f"{_where(conf, client_id)}: {conf} does not exist "
                               "(storage.rbd.ceph_conf)")
        cluster = rados.Rados(conffile=str(conf), rados_id=client_id)
        try:
            cluster.conf_set("client_mount_timeout", str(CONNECT_TIMEOUT))
            cluster.connect(timeout=CONNECT_TIMEOUT)
        except rados.Error as err:
            cluster.shutdown()
            raise StorageError(f"{_where(conf, client_id)}: cannot connect: {err}") from None
        _connections[key] = cluster
        return cluster


@atexit.register
def _disconnect() -> None:
    with _connections_lock:
        for key, cluster in list(_connections.items()):
            if key[2] == os.getpid():
                cluster.shutdown()
        _connections.clear()


def _allocated(image: rbd.Image, *, include_parent: bool) -> int:
    """Bytes of the objects ``image`` holds (an object counts whole: RBD allocates by object;
    cheap with the object map, which new images have)."""
    total = 0

    def count(offset: int, length: int, exists: bool) -> None:
        nonlocal total
        total += length if exists else 0
    image.diff_iterate(0, image.size(), None, count, include_parent=include_parent,
                       whole_object=True)
    return total


def blocklist(settings: RbdConfig, addr: str, seconds: float, *, why: str) -> None:
    """Fence Ceph client ``addr`` (``IP:PORT/NONCE``; ``IP:0/0``: every client from that IP)
    for ``seconds``: the OSDs drop its watches and refuse its I/O. ``profile rbd`` may add."""
    _blocklist_op(settings, {"blocklistop": "add", "addr": addr, "expire": float(seconds)},
                  f"could not blocklist {addr} ({why})")


def unblocklist(settings: RbdConfig, addr: str) -> None:
    """Lift the fence on ``addr`` (needs the mon cap ``allow command "osd blocklist" with
    blocklistop=rm`` besides ``profile rbd``); one that is not there is no error."""
    _blocklist_op(settings, {"blocklistop": "rm", "addr": addr},
                  f"could not lift the blocklist entry of {addr}")


def wait_for_latest_osdmap(settings: RbdConfig) -> None:
    """Return once this process has the cluster's newest osdmap (a blocklist just made, say):
    ops carry the client's map epoch and an OSD serves them only once it has that map too,
    by then without a blocklisted client's watch."""
    _connection(settings.ceph_conf, settings.client_id).wait_for_latest_osdmap()


def client_address(settings: RbdConfig) -> str:
    """This process's address as the cluster sees it (``IP:0/NONCE``): what a peer fences."""
    return str(_connection(settings.ceph_conf, settings.client_id).get_addrs())


def _blocklist_op(settings: RbdConfig, command: dict[str, object], failed: str) -> None:
    cluster = _connection(settings.ceph_conf, settings.client_id)
    code, _, status = cluster.mon_command(json.dumps({"prefix": "osd blocklist", **command}),
                                          b"")
    if code != 0:
        raise StorageError(f"{_where(settings.ceph_conf, settings.client_id)}: {failed}: "
                           f"{status or os.strerror(-code)}")


class RbdStore:
    """Images and roots in one Ceph pool, as ``storage.rbd`` names it."""

    kind = StorageKind.RBD

    def __init__(self, config: Config) -> None:
        self.settings = config.storage.rbd
        self.staging_dir = config.storage.cache / "staging"

    # -- images ------------------------------------------------------------------

    def staging(self, name: str) -> Path:
        return self.staging_dir / f"{validate_image_name(name)}.img"

    def keep_image(self, name: str, staged: Path, made: str,
                   progress: Progress | None = None) -> Image:
        """Write ``staged`` into the pool as image ``name``'s next version; ``staged`` goes."""
        final = IMAGE_PREFIX + validate_image_name(name)
        size = staged.stat().st_size
        with self._pool() as io:
            versions = self._versions(io, final)
            if versions:
                target = final
            else:
                target = f"{TEMP_PREFIX}{name}.{socket.gethostname()}.{os.getpid()}"
                self._remove(io, final)  # an image left without any version is nothing
                rbd.RBD().create(io, target, size)
            number = max(versions, default=0) + 1
            try:
                with rbd.Image(io, target) as image:
                    if versions:
                        image.resize(size)
                        image.discard(0, size)  # the versions keep their own blocks
                    self._write(image, staged, size, progress)
                    image.metadata_set(MADE_KEY + _version_name(number), made)
                    image.create_snap(_version_name(number))
                    image.protect_snap(_version_name(number))
                if target != final:
                    rbd.RBD().rename(io, target, final)
            except BaseException:
                if target != final:
                    self._remove(io, target, snapshots=True)
                raise
        staged.unlink(missing_ok=True)
        kept = self.find_image(ImageRef(name, number))
        assert kept is not None
        return kept

    def find_image(self, ref: ImageRef) -> Image | None:
        with self._pool() as io:
            rbd_name = IMAGE_PREFIX + validate_image_name(ref.name)
            versions = self._versions(io, rbd_name)
            number = max(versions, default=None) if ref.version is None else ref.version
            return self._describe(io, rbd_name, number) if number in versions else None

    def images(self) -> list[Image]:
        with self._pool() as io:
            return [self._describe(io, n, number) for n in sorted(rbd.RBD().list(io))
                    if n.startswith(IMAGE_PREFIX) for number in self._versions(io, n)]

    def drop_image(self, image: Image) -> None:
        """Delete that version (its snapshot): refused while a clone of it exists (``rbd
        children``), whatever the inventory says; the image goes with its last version."""
        final, snap = IMAGE_PREFIX + image.name, _version_name(image.version)
        with self._pool() as io:
            with rbd.Image(io, final) as head:
                head.set_snap(snap)
                children = [f"{c['pool']}/{c['image']}" for c in head.list_children2()]
                if children:
                    raise Conflict(f"image {image.ref} has clones: {', '.join(children)}; "
                                   "remove those clients first")
                head.set_snap(None)
                if head.is_protected_snap(snap):
                    head.unprotect_snap(snap)
                head.remove_snap(snap)
                with suppress(KeyError):
                    head.metadata_remove(MADE_KEY + snap)
            if not self._versions(io, final):
                self._remove(io, final)

    # -- roots and LUNs ----------------------------------------------------------------

    def root_location(self, hostname: str) -> Location:
        return rbd_location(self.settings.pool, ROOT_PREFIX + hostname)

    def make_root(self, location: Location, image: Image | None, size: int,
                  progress: Progress | None = None) -> str:
        if image is not None and image.layout is Layout.DISK and size != image.size:
            raise ValidationError(
                f"a disk image on RBD keeps its size ({image.size} bytes): its partition "
                "cannot be grown without a block device on this server; leave --size out")
        with self._pool() as io:
            try:
                if image is None:
                    rbd.RBD().create(io, location.image, size)
                    how = "blank RBD image"
                else:
                    version = _version_name(image.version)
                    rbd.RBD().clone(io, IMAGE_PREFIX + image.name, version, io, location.image)
                    how = f"RBD clone of version {version}"
            except rbd.ImageExists:
                raise Conflict(f"RBD image {location} already exists (the data of a removed "
                               "client?); remove it or choose another --hostname") from None
            try:
                with rbd.Image(io, location.image) as made:
                    if made.size() < size:
                        made.resize(size)
                    made.metadata_set(*NO_CACHE)
            except BaseException:
                self._remove(io, location.image)
                raise
            if progress:
                progress(size, size)
        return how

    def open_lun(self, location: Location, size: int | None) -> tuple[int, bool]:
        """An admin's RBD image as an extra LUN: its size, and whether it was made here
        (missing, it is made with ``size``). Its librbd cache is turned off either way."""
        with self._pool(location.pool) as io:
            created = False
            if size is not None:
                try:
                    rbd.RBD().create(io, location.image, size)
                    created = True
                except rbd.ImageExists:
                    pass
            try:
                image = rbd.Image(io, location.image)
            except rbd.ImageNotFound:
                raise ValidationError(f"RBD image {location} does not exist: give --size "
                                      "to create it") from None
            with image:
                have = image.size()
                if size is not None and size != have:
                    raise ValidationError(f"RBD image {location} exists with {have} bytes; "
                                          f"--size {size} differs (leave --size out to use it "
                                          "as is)")
                image.metadata_set(*NO_CACHE)
        return have, created

    def make_upper(self, location: Location, size: int) -> str:
        """An overlay client's empty upper layer: the sparse ext4 file the file store makes
        (:func:`empty_upper`), made in the staging directory and written into a new RBD
        image (its data extents only, about 1 MiB), which needs no kernel block device.
        The image is written under a temporary name and renamed into place: whole or not
        at all (a killed maker leaves a ``tmp.`` image that :meth:`recover` removes)."""
        if self._exists(location):
            raise Conflict(f"RBD image {location} already exists (the data of a removed "
                           "client?); remove it or choose another --hostname")
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        staged = temp_path(self.staging_dir / f"{location.image}.img")
        temp = f"{TEMP_PREFIX}{location.image}.{socket.gethostname()}.{os.getpid()}"
        try:
            empty_upper(staged, size, str(location))
            with self._pool(location.pool) as io:
                rbd.RBD().create(io, temp, size)
                try:
                    with rbd.Image(io, temp) as image:
                        self._write(image, staged, size, None)
                        image.metadata_set(*NO_CACHE)
                    rbd.RBD().rename(io, temp, location.image)
                except BaseException as err:
                    self._remove(io, temp)
                    if isinstance(err, rbd.ImageExists):
                        raise Conflict(f"RBD image {location} already exists") from None
                    raise
        finally:
            staged.unlink(missing_ok=True)
        return "empty upper layer (sparse ext4 written into an RBD image)"

    def remove(self, location: Location) -> None:
        with self._pool(location.pool) as io:
            self._remove(io, location.image)

    def remove_abandoned(self, location: Location) -> None:
        """Remove a root whose maker died with it open (see :meth:`_remove_abandoned`; a root
        whose record is unfinished has no target, so its only watcher is the dead maker)."""
        with self._pool(location.pool) as io:
            self._remove_abandoned(io, location)

    def _remove_abandoned(self, io: rados.Ioctx, location: Location, *,
                          snapshots: bool = False) -> None:
        """Remove an image whose maker died with it open: its watch would keep the image busy
        until the OSD times it out (~30 s), so every watcher is blocklisted first. Needs
        the monitor's ``osd blocklist``, which ``profile rbd`` allows. An image that cannot
        be opened may be half made (a clone killed after its directory entry, before its
        header): librbd's remove takes what there is of it."""
        try:
            with rbd.Image(io, location.image, read_only=True) as image:
                watchers = [w["addr"] for w in image.watchers_list()]
        except rbd.ImageNotFound:
            self._remove(io, location.image)
            return
        for addr in watchers:
            blocklist(self.settings, addr, FENCE_SECONDS, why=f"it holds {location}")
            log.warning("blocklisted %s for %.0f s: the dead process that held %s",
                        addr, FENCE_SECONDS, location)
        if watchers:
            wait_for_latest_osdmap(self.settings)
        deadline = time.monotonic() + FENCE_SETTLE
        while True:
            try:
                self._remove(io, location.image, snapshots=snapshots)
                return
            except ImageBusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _exists(self, location: Location) -> bool:
        with self._pool(location.pool) as io:
            try:
                with rbd.Image(io, location.image, read_only=True):
                    return True
            except rbd.ImageNotFound:
                return False

    def allocated(self, location: Location) -> int | None:
        try:
            with (self._pool(location.pool) as io,
                  rbd.Image(io, location.image, read_only=True) as image):
                return _allocated(image, include_parent=False)
        except (rbd.Error, StorageError):
            return None

    def recover(self) -> list[str]:
        """Remove ``tmp.`` images whose making process (an import, an upper layer; on this
        host) is gone, and the staging directory's temporary files of such processes."""
        removed = []
        host = socket.gethostname()
        with self._pool() as io:
            for name in rbd.RBD().list(io):
                parts = name.rsplit(".", 2)
                if not name.startswith(TEMP_PREFIX) or len(parts) != 3 or parts[1] != host:
                    continue
                if parts[2].isdigit() and not os.path.exists(f"/proc/{parts[2]}"):
                    self._remove_abandoned(io, rbd_location(self.settings.pool, name),
                                           snapshots=True)
                    log.warning("removed RBD image %s/%s left by an interrupted import "
                                "or upper layer", self.settings.pool, name)
                    removed.append(name)
        if self.staging_dir.is_dir():
            removed += [str(p) for p in remove_stale_temps(self.staging_dir)]
        return removed

    # -- internals -----------------------------------------------------------------

    @contextmanager
    def _pool(self, pool: str | None = None) -> Iterator[rados.Ioctx]:
        """The pool ``pool`` (default: ``storage.rbd.pool``) on this process's connection."""
        pool = pool or self.settings.pool
        try:
            io = _connection(self.settings.ceph_conf, self.settings.client_id).open_ioctx(pool)
        except rados.ObjectNotFound:
            raise StorageError(f"{_where(self.settings.ceph_conf, self.settings.client_id)}: "
                               f"pool {pool} does not exist") from None
        try:
            yield io
        except rbd.Error as err:
            raise StorageError(f"pool {pool}: {err}") from None
        finally:
            io.close()

    @staticmethod
    def _versions(io: rados.Ioctx, name: str) -> list[int]:
        try:
            with rbd.Image(io, name, read_only=True) as image:
                return sorted(int(m[1]) for s in image.list_snaps()
                              if (m := VERSION.match(s["name"])))
        except rbd.ImageNotFound:
            return []

    def _describe(self, io: rados.Ioctx, rbd_name: str, number: int) -> Image:
        """Version ``number`` of RBD image ``rbd_name`` (one :meth:`_versions` lists)."""
        version = _version_name(number)
        with rbd.Image(io, rbd_name, snapshot=version, read_only=True) as image:
            size = image.size()
            head = image.read(0, min(HEAD_BYTES, size))
            snap = next(s for s in image.list_snaps() if s["name"] == version)
            created = image.get_snap_timestamp(snap["id"]).timestamp()
            used = _allocated(image, include_parent=True)
            try:
                made = image.metadata_get(MADE_KEY + version)
            except KeyError:
                made = ""  # kept before versions noted how they were made
        return Image(rbd_name.removeprefix(IMAGE_PREFIX),
                     rbd_location(self.settings.pool, rbd_name, version),
                     size, used, created, number, layout=layout_of(head), made=made)

    @staticmethod
    def _write(image: rbd.Image, staged: Path, size: int, progress: Progress | None) -> None:
        """The file's data into the image, one object at a time; zeros are left unwritten
        (the image reads zeros there anyway), so a mostly empty file costs its data only."""
        zero = bytes(CHUNK)
        with open(staged, "rb") as f:
            extents = data_extents(f.fileno(), size)
            total = sum(length for _, length in extents)
            done = 0
            last = -1  # the chunk written last: extents may share one
            for start, length in extents:
                for offset in range(start - start % CHUNK, start + length, CHUNK):
                    if offset <= last:
                        continue
                    last = offset
                    f.seek(offset)
                    data = f.read(min(CHUNK, size - offset))
                    if data != zero[:len(data)]:
                        image.write(data, offset)
                done += length
                if progress:
                    progress(done, total)
            image.flush()

    @staticmethod
    def _remove(io: rados.Ioctx, name: str, *, snapshots: bool = False) -> None:
        """Delete RBD image ``name`` (gone already: nothing to do); ``snapshots``: its
        snapshots first (an unfinished import's, which no clone uses)."""
        try:
            if snapshots:
                with rbd.Image(io, name) as image:
                    for snap in list(image.list_snaps()):
                        if image.is_protected_snap(snap["name"]):
                            image.unprotect_snap(snap["name"])
                        image.remove_snap(snap["name"])
            rbd.RBD().remove(io, name)
        except rbd.ImageNotFound:
            pass
        except rbd.ImageBusy:
            raise ImageBusyError(f"RBD image {name} is still open (by a target?)") from None
        except rbd.ImageHasSnapshots:
            raise StorageError(f"RBD image {name} has snapshots; netboot made none, so they "
                               "are somebody else's: remove them by hand") from None
