"""A reproducible cpio "newc" writer: the archive format the Linux kernel unpacks as initramfs.

Same entries in, same bytes out: entries are sorted, owners are root, times
are one fixed epoch and inode numbers follow the order. GNU cpio cannot
promise that (it takes inodes and times from the disk), hence this writer.
Format: linux/Documentation/driver-api/early-userspace/buffer-format.rst.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member. ``mode`` includes the file type bits (``stat.S_IFREG | 0o755``)."""

    name: str
    mode: int
    data: bytes = b""
    uid: int = 0
    gid: int = 0
    rdevmajor: int = 0
    rdevminor: int = 0

    @classmethod
    def file(cls, name: str, data: bytes, perm: int = 0o644) -> Entry:
        return cls(name, stat.S_IFREG | perm, data)

    @classmethod
    def directory(cls, name: str, perm: int = 0o755) -> Entry:
        return cls(name, stat.S_IFDIR | perm)

    @classmethod
    def symlink(cls, name: str, target: str) -> Entry:
        return cls(name, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def chardev(cls, name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
        return cls(name, stat.S_IFCHR | perm, rdevmajor=major, rdevminor=minor)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(entry: Entry, ino: int, mtime: int) -> bytes:
    name = entry.name.encode() + b"\0"
    fields = (
        ino, entry.mode, entry.uid, entry.gid,
        2 if stat.S_ISDIR(entry.mode) else 1,  # nlink
        mtime, len(entry.data), 0, 0,  # devmajor/devminor of the archive's own device: none
        entry.rdevmajor, entry.rdevminor, len(name), 0,  # check: 0 for newc
    )
    head = MAGIC + b"".join(b"%08X" % f for f in fields)
    return head + name + _pad(len(head) + len(name))


def with_parents(entries: list[Entry]) -> list[Entry]:
    """``entries`` plus a 0755 directory for every parent they lack."""
    names = {e.name for e in entries}
    extra: list[Entry] = []
    for e in entries:
        parts = e.name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in names:
                names.add(parent)
                extra.append(Entry.directory(parent))
    return entries + extra


def write_newc(entries: list[Entry], mtime: int = 0, align: int = 4) -> bytes:
    """The archive of ``entries`` (names without a leading slash), sorted, padded to ``align``.

    ``align`` matters under UEFI: the kernel's EFI stub joins several initrds
    without padding, so a base archive must end on a 4-byte boundary for the
    one after it to be found.
    """
    out = bytearray()
    ordered = sorted(with_parents([e for e in entries]), key=lambda e: e.name)
    seen: set[str] = set()
    for ino, entry in enumerate(ordered, start=1):
        if entry.name in seen:
            raise ValueError(f"duplicate cpio entry {entry.name!r}")
        seen.add(entry.name)
        out += _header(entry, ino, mtime)
        out += entry.data + _pad(len(entry.data))
    out += _header(Entry(TRAILER, 0), 0, 0)
    out += b"\0" * (-len(out) % max(align, 4))
    return bytes(out)
