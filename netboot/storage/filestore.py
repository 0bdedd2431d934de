"""The file store: golden images as ``<images>/<name>.img``, client roots as ``<luns>/<host>.img``.

A root is a reflink or sparse copy of its image (:mod:`netboot.storage.clone`),
grown here, filesystem and all, before any client sees it. Everything is made
under a temporary name and renamed into place, so a crash leaves either the
whole file or a temporary one that :meth:`FileStore.recover` removes.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from pathlib import Path

from netboot.config import Config, StorageKind
from netboot.errors import Conflict
from netboot.host.files import atomic_path, create_sparse, fsync_dir, remove_stale_temps
from netboot.names import validate_image_name
from netboot.storage.clone import Progress, clone_file, grow_disk, grow_ext4
from netboot.storage.location import Location, Store
from netboot.storage.model import HEAD_BYTES, Image, Layout, layout_of

log = logging.getLogger(__name__)

SUFFIX = ".img"


FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap), linux/fs.h
FIEMAP_HEADER = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, mapped, count, reserved
FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, 2 unused, flags, 3 unused
FIEMAP_FLAG_SYNC = 0x1  # linux/fiemap.h: flush delayed allocations first
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000  # the extent is shared with another file (a reflink)
FIEMAP_BATCH = 256


def own_bytes(path: Path) -> int:
    """Bytes of ``path``'s extents that no other file shares (FIEMAP): what a reflinked clone
    costs on its own. A filesystem without FIEMAP counts its blocks (``st_blocks``)."""
    total = 0
    start = 0
    with open(path, "rb") as f:
        while True:
            request = bytearray(FIEMAP_HEADER.size + FIEMAP_BATCH * FIEMAP_EXTENT.size)
            FIEMAP_HEADER.pack_into(request, 0, start, 2**64 - 1, FIEMAP_FLAG_SYNC, 0,
                                    FIEMAP_BATCH, 0)
            try:
                fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, request)
            except OSError as err:
                if err.errno in (errno.EOPNOTSUPP, errno.ENOTTY):
                    return os.fstat(f.fileno()).st_blocks * 512
                raise
            mapped = FIEMAP_HEADER.unpack_from(request, 0)[3]
            if mapped == 0:
                return total
            for i in range(mapped):
                logical, _, length, _, _, flags, *_ = FIEMAP_EXTENT.unpack_from(
                    request, FIEMAP_HEADER.size + i * FIEMAP_EXTENT.size)
                if not flags & FIEMAP_EXTENT_SHARED:
                    total += length
                if flags & FIEMAP_EXTENT_LAST:
                    return total
                start = logical + length


def detect_layout(path: Path) -> Layout:
    with open(path, "rb") as f:
        return layout_of(f.read(HEAD_BYTES))


class FileStore:
    """Images and roots as files on this server."""

    kind = StorageKind.FILE

    def __init__(self, config: Config) -> None:
        self.images_dir = config.storage.images
        self.luns_dir = config.storage.luns

    def staging(self, name: str) -> Path:
        return self.images_dir / f"{validate_image_name(name)}{SUFFIX}"

    def keep_image(self, name: str, staged: Path, progress: Progress | None = None) -> Image:
        return self._describe(staged)  # made in place: staging() is the image's own path

    def find_image(self, name: str) -> Image | None:
        path = self.staging(name)
        return self._describe(path) if path.is_file() else None

    def images(self) -> list[Image]:
        if not self.images_dir.is_dir():
            return []
        return [self._describe(p) for p in sorted(self.images_dir.glob(f"*{SUFFIX}"))
                if not p.name.startswith(".")]

    def drop_image(self, image: Image) -> None:
        image.path.unlink()
        fsync_dir(image.path.parent)

    def root_location(self, hostname: str) -> Location:
        return Location(Store.FILE, str(self.luns_dir / f"{hostname}{SUFFIX}"))

    def make_root(self, location: Location, image: Image | None, size: int,
                  progress: Progress | None = None) -> str:
        final = Path(location.name)
        if final.exists():
            raise Conflict(f"{final} already exists (the data of a removed client?); "
                           "move it away or choose another --hostname")
        with atomic_path(final) as temp:
            if image is None:
                create_sparse(temp, size)
                return "blank"
            method = clone_file(image.path, temp, progress)
            (grow_disk if image.layout is Layout.DISK else grow_ext4)(temp, size)
        return method.value

    def remove(self, location: Location) -> None:
        Path(location.name).unlink(missing_ok=True)

    def remove_abandoned(self, location: Location) -> None:
        self.remove(location)  # a dead process's open file is no obstacle to unlink

    def allocated(self, location: Location) -> int | None:
        try:
            return own_bytes(Path(location.name))
        except OSError:
            return None

    def recover(self) -> list[str]:
        removed = []
        for directory in (self.images_dir, self.luns_dir):
            if directory.is_dir():
                for path in remove_stale_temps(directory):
                    log.warning("removed %s left by an interrupted copy", path)
                    removed.append(str(path))
        return removed

    def _describe(self, path: Path) -> Image:
        st = path.stat()
        return Image(path.name.removesuffix(SUFFIX), Location(Store.FILE, str(path)), st.st_size,
                     st.st_blocks * 512, st.st_mtime, layout=detect_layout(path))
