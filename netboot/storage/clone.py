"""Copying disk images cheaply: a reflink where the filesystem shares blocks, else a sparse copy.

A reflink (the FICLONE ioctl: XFS with reflink=1, btrfs, bcachefs) makes a
copy that shares every block with its source until one of them writes, so a
client's 4 GiB root appears instantly and takes no space. Elsewhere (ext4)
the copy walks only the source's data extents (SEEK_DATA/SEEK_HOLE) and copies
them with copy_file_range, so holes stay holes and an image that is mostly
empty copies in a moment.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from netboot.errors import NetbootError
from netboot.host.files import fsync_file
from netboot.host.run import run

FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h
_CHUNK = 8 << 20
# errors that mean "this filesystem (pair) cannot reflink", not "the copy failed"
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}

Progress = Callable[[int, int], None]  # (bytes done, bytes in total)


class CloneError(NetbootError):
    """Copying or growing an image failed."""


class Method(StrEnum):
    REFLINK = "reflink"
    SPARSE = "sparse copy"


def data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of every data extent of an open file, holes skipped."""
    extents = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # nothing but a hole from offset to the end
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append((start, end - start))
        offset = end
    return extents


def _copy_range(src: int, dst: int, length: int, offset: int) -> int:
    """Up to ``length`` bytes at ``offset`` from ``src`` to the same offset in ``dst``; bytes
    copied. copy_file_range where the kernel allows it; across filesystems (Linux 5.19 and
    later refuse it unless both are of one type that implements it: not ext4 to XFS, nor
    ext4 to another ext4) a read and a write."""
    try:
        return os.copy_file_range(src, dst, length, offset, offset)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
    return os.pwrite(dst, os.pread(src, length, offset), offset)


def _sparse_copy(src: int, dst: int, size: int, progress: Progress | None) -> None:
    extents = data_extents(src, size)
    total = sum(length for _, length in extents)
    done = 0
    for start, length in extents:
        copied = 0
        while copied < length:
            step = min(_CHUNK, length - copied)
            n = _copy_range(src, dst, step, start + copied)
            if n == 0:
                raise CloneError("source image shrank while it was being copied")
            copied += n
            done += n
            if progress:
                progress(done, total)
    os.ftruncate(dst, size)


def clone_file(source: Path, target: Path, progress: Progress | None = None) -> Method:
    """Copy ``source`` to the new file ``target`` (which must not exist), durably.

    Returns how it was copied. On failure ``target`` is removed.
    """
    src = os.open(source, os.O_RDONLY)
    try:
        size = os.fstat(src).st_size
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                fcntl.ioctl(dst, FICLONE, src)
                method = Method.REFLINK
                if progress:
                    progress(size, size)
            except OSError as err:
                if err.errno not in _NO_REFLINK:
                    raise
                _sparse_copy(src, dst, size, progress)
                method = Method.SPARSE
            os.fsync(dst)
        except BaseException:
            os.close(dst)
            target.unlink(missing_ok=True)
            raise
        os.close(dst)
    except OSError as err:
        raise CloneError(f"copying {source} to {target}: {err.strerror}") from None
    finally:
        os.close(src)
    return method


def ext4_from_tree(tree: Path, path: Path, label: str, what: str,
                   error: type[NetbootError] = NetbootError, *, sparse: bool = False) -> None:
    """Make the file ``path`` (its size already set) an ext4 filesystem holding ``tree``, by
    ``mke2fs -d``: no mount, no root needed. ``sparse``: ``path`` is all holes, so its
    journal and inode tables are left unwritten (they read as zeros): a 2 GiB filesystem
    then costs about 1 MiB instead of its 64 MiB journal."""
    # -T default: 4 KiB blocks even for a small image (mke2fs's "small" type takes 1 KiB),
    # so a clone that grows it to a whole LUN gets 1/4 the blocks and 1/16 the groups to
    # add (online, at the client's first boot on RBD: 22 s instead of seconds in TCG)
    lazy = ["-E", "lazy_itable_init=1,lazy_journal_init=1"] if sparse else []
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-T", "default", *lazy, "-L", label[:16],
         "-d", str(tree), str(path)], what=what, error=error)


def grow_ext4(path: Path, size: int) -> None:
    """Grow the file ``path`` to ``size`` bytes and its ext2/3/4 filesystem to fill it."""
    if os.path.getsize(path) >= size:
        return
    # resize2fs insists on a freshly checked filesystem; -p repairs only what is safe.
    run(["e2fsck", "-f", "-p", str(path)], what=f"checking {path.name}", error=CloneError,
        ok=(0, 1))
    os.truncate(path, size)
    run(["resize2fs", str(path)], what=f"growing {path.name} to {size} bytes", error=CloneError)
    fsync_file(path)


def grow_disk(path: Path, size: int) -> None:
    """Grow the disk image ``path`` (a partition table whose last partition holds an ext4
    root, as `image build --sanboot` makes) to ``size`` bytes: the file, that partition
    (sfdisk), then its filesystem. e2fsck and resize2fs open the filesystem inside the
    file at the partition's offset (e2fsprogs' ``FILE?offset=N``): no loop device.

    resize2fs, given a regular file, truncates it at the end to the filesystem's new
    length, offset not counted: that would cut the last ``offset`` bytes of the grown
    filesystem. It truncates only a file that was longer than that when it started, so
    the file is cut to the filesystem's length before (a tail that holds nothing yet)
    and set to ``size`` after. A growth smaller than the offset grows the file only.
    """
    current = os.path.getsize(path)
    if current >= size:
        return
    number, offset, _ = _last_partition(path)
    os.truncate(path, size)
    if size - current < offset:
        fsync_file(path)
        return
    inside = f"{path}?offset={offset}"
    run(["e2fsck", "-f", "-p", inside], what=f"checking the root filesystem in {path.name}",
        error=CloneError, ok=(0, 1))
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "-N", str(number), str(path)],
        what=f"growing partition {number} of {path.name}", error=CloneError, input=", +\n")
    _, _, length = _last_partition(path)
    os.truncate(path, length)  # not longer than the filesystem will be: see above
    run(["resize2fs", inside, f"{length // 1024}K"],
        what=f"growing the root filesystem in {path.name} to {length} bytes", error=CloneError)
    os.truncate(path, size)
    fsync_file(path)


def _last_partition(path: Path) -> tuple[int, int, int]:
    """The number, byte offset and length of the disk image's last partition."""
    table = json.loads(run(["sfdisk", "--json", str(path)],
                           what=f"reading the partition table of {path.name}",
                           error=CloneError))["partitiontable"]
    sector = table.get("sectorsize", 512)
    if not table.get("partitions"):
        raise CloneError(f"{path.name} has no partition to grow")
    last = max(table["partitions"], key=lambda p: p["start"])
    number = int(re.search(r"(\d+)$", last["node"]).group(1))
    return number, last["start"] * sector, last["size"] * sector


def is_ext_filesystem(path: Path) -> bool:
    """Whether ``path`` starts with an ext2/3/4 superblock (magic 0xEF53 at byte 1080)."""
    with open(path, "rb") as f:
        f.seek(1080)
        return f.read(2) == b"\x53\xef"
