"""Boot files held in memory for the TFTP loop, shared by every transfer of the same file.

A lock-step transfer reads one block per ACK; from memory that costs a slice,
from disk a pread(2) call, which measured as a third of the loop's time per
block. Boot files are few and small (loaders, a kernel, an initramfs), and a
boot storm sends the same ones to every client, so one copy serves all.
Entries are keyed by inode, size and mtime: a replaced or rewritten file is
read afresh. Files larger than a quarter of the budget are read from disk.

A cached file's DATA datagrams are built once per block size asked for and
kept with it (:meth:`ContentCache.datagrams`): a lock-step block then costs a
tuple index instead of a slice, a copy and a header, a ninth of the time
(the copy was the largest part of the loop's Python work per block), and a
boot storm of machines loading one kernel shares one set of datagrams. They
count against the same budget as the file.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field

from netboot.boot.content import BytesSource, FileSource
from netboot.tftp.transfer import build_datagrams

DEFAULT_BUDGET = 512 << 20  # bytes of file content (and its datagrams) kept in memory
DATAGRAM_OVERHEAD = 40  # bytes a datagram costs beyond its content: header, object, slot
MAX_BLOCK_SIZES = 4  # sets of datagrams kept per file; more block sizes are sliced per block


class ContentCache:
    """A least-recently-used cache of whole files, bounded in bytes. One thread only."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[tuple[int, int, int, int], _Entry] = OrderedDict()
        self._keys: dict[int, tuple[int, int, int, int]] = {}  # id(source) -> its entry

    def load(self, source: FileSource) -> BytesSource | None:
        """The file's bytes from memory (read now if need be), or None if it is too large."""
        info = os.fstat(source.fd)
        if info.st_size > self.budget // 4:
            return None
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry.source
        data = _read_all(source.fd, info.st_size)
        if len(data) != info.st_size:
            return None  # it changed while being read: serve it from disk this time
        entry = _Entry(BytesSource(data))
        self._entries[key] = entry
        self._keys[id(entry.source)] = key
        self._grow(entry, len(data))
        return entry.source

    def datagrams(self, source: BytesSource, blksize: int) -> tuple[bytes, ...] | None:
        """The DATA datagrams of a file this cache returned, at ``blksize`` (built now if
        need be), or None for a source it does not hold or past ``MAX_BLOCK_SIZES``."""
        key = self._keys.get(id(source))
        entry = self._entries.get(key) if key is not None else None
        if entry is None or entry.source is not source:
            return None
        built = entry.datagrams.get(blksize)
        if built is not None:
            return built
        cost = source.size + (source.size // blksize + 1) * DATAGRAM_OVERHEAD
        if len(entry.datagrams) >= MAX_BLOCK_SIZES or entry.cost + cost > self.budget:
            return None
        built = entry.datagrams[blksize] = build_datagrams(source.data, blksize)
        self._entries.move_to_end(key)
        self._grow(entry, cost)
        return built

    def _grow(self, entry: _Entry, extra: int) -> None:
        """Count ``extra`` bytes more for ``entry`` (the most recently used), then drop the
        least recently used files until the budget holds."""
        entry.cost += extra
        self.used += extra
        while self.used > self.budget:
            _, old = self._entries.popitem(last=False)
            del self._keys[id(old.source)]
            self.used -= old.cost


@dataclass(slots=True)
class _Entry:
    """A cached file: its bytes, its datagrams by block size, what they cost together."""

    source: BytesSource
    datagrams: dict[int, tuple[bytes, ...]] = field(default_factory=dict)
    cost: int = 0


def _read_all(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 8 << 20), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
