"""The file store: golden images as ``<images>/<name>@<version>.img`` (how each was made in
``<name>@<version>.json`` beside it), client roots as ``<luns>/<host>.img``.

A root is a reflink or sparse copy of its image (:mod:`netboot.storage.clone`),
grown here, filesystem and all, before any client sees it. Everything is made
under a temporary name and renamed into place, so a crash leaves either the
whole file or a temporary one that :meth:`FileStore.recover` removes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import struct
import tempfile
from pathlib import Path

from netboot.config import Config, StorageKind
from netboot.errors import Conflict
from netboot.host.files import (
    atomic_path,
    atomic_write,
    create_sparse,
    fsync_dir,
    remove_stale_temps,
)
from netboot.names import validate_image_name
from netboot.storage.clone import Progress, clone_file, ext4_from_tree, grow_disk, grow_ext4
from netboot.storage.location import Location, Store
from netboot.storage.model import (
    HEAD_BYTES,
    VERSION_MARK,
    Image,
    ImageRef,
    Layout,
    StorageError,
    layout_of,
)

log = logging.getLogger(__name__)

SUFFIX = ".img"
NOTE_SUFFIX = ".json"  # beside each image version: how it was made
UPPER_DIRS = ("upper", "work")  # an overlay upper LUN's directories: overlayfs' upperdir, workdir


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


def empty_upper(path: Path, size: int, what: str) -> None:
    """Make the new file ``path`` an overlay client's empty upper layer (``what``, for
    errors): a sparse ext4 filesystem of ``size`` bytes holding the directories overlayfs
    needs, ``upper/`` and ``work/``; about 1 MiB of it allocated."""
    with tempfile.TemporaryDirectory() as tree:
        for layer in UPPER_DIRS:
            (Path(tree) / layer).mkdir()
        create_sparse(path, size)
        ext4_from_tree(Path(tree), path, "overlay-upper",
                       f"mke2fs could not make the upper layer {what}", StorageError,
                       sparse=True)


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
        number = max(self._versions(validate_image_name(name)), default=0) + 1
        return self.images_dir / f"{name}{VERSION_MARK}{number}{SUFFIX}"

    def keep_image(self, name: str, staged: Path, made: str,
                   progress: Progress | None = None) -> Image:
        """``staged`` was made in place (staging() is the version's own path): note how."""
        atomic_write(staged.with_suffix(NOTE_SUFFIX),
                     (json.dumps({"made": made}) + "\n").encode(), 0o644)
        return self._describe(name, self._version_of(staged), staged)

    def find_image(self, ref: ImageRef) -> Image | None:
        versions = self._versions(validate_image_name(ref.name))
        number = max(versions, default=None) if ref.version is None else ref.version
        if number not in versions:
            return None
        return self._describe(ref.name, number, versions[number])

    def images(self) -> list[Image]:
        if not self.images_dir.is_dir():
            return []
        names = sorted({self._split(p)[0] for p in self.images_dir.glob(f"*{SUFFIX}")
                        if not p.name.startswith(".")})
        return [self._describe(name, number, path) for name in names
                for number, path in sorted(self._versions(name).items())]

    def drop_image(self, image: Image) -> None:
        image.path.with_suffix(NOTE_SUFFIX).unlink(missing_ok=True)
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

    def make_upper(self, location: Location, size: int) -> str:
        """An overlay client's upper layer at ``location``: a sparse ext4 file of ``size``
        bytes holding the empty directories ``upper/`` and ``work/``, whole or not at all."""
        final = Path(location.name)
        if final.exists():
            raise Conflict(f"{final} already exists (the data of a removed client?); "
                           "move it away or choose another --hostname")
        with atomic_path(final) as temp:
            empty_upper(temp, size, str(final))
        return "empty upper layer (sparse ext4)"

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

    @staticmethod
    def _split(path: Path) -> tuple[str, int]:
        """(name, version) of an image file: ``NAME@N.img``, or ``NAME.img`` as made before
        images had versions, which is version 1."""
        name, _, number = path.name.removesuffix(SUFFIX).partition(VERSION_MARK)
        return name, int(number) if number.isdigit() else 1

    def _version_of(self, path: Path) -> int:
        return self._split(path)[1]

    def _versions(self, name: str) -> dict[int, Path]:
        """Image ``name``'s version files by number."""
        found = {}
        for path in (self.images_dir / f"{name}{SUFFIX}",
                     *self.images_dir.glob(f"{name}{VERSION_MARK}*{SUFFIX}")):
            if path.is_file() and self._split(path)[0] == name:
                found[self._version_of(path)] = path
        return found

    def _describe(self, name: str, version: int, path: Path) -> Image:
        st = path.stat()
        try:
            made = json.loads(path.with_suffix(NOTE_SUFFIX).read_text())["made"]
        except FileNotFoundError:
            made = ""  # made before versions were noted
        except (ValueError, KeyError) as err:
            raise StorageError(f"{path.with_suffix(NOTE_SUFFIX)}: not netboot's note of how "
                               f"image {name}@{version} was made ({err})") from None
        return Image(name, Location(Store.FILE, str(path)), st.st_size, st.st_blocks * 512,
                     st.st_mtime, version, layout=detect_layout(path), made=made)
