"""Boot files held in memory for the TFTP loop, shared by every transfer of the same file.

A lock-step transfer reads one block per ACK; from memory that costs a slice,
from disk a pread(2) call, which measured as a third of the loop's time per
block. Boot files are few and small (loaders, a kernel, an initramfs), and a
boot storm sends the same ones to every client, so one copy serves all.
Entries are keyed by inode, size and mtime: a replaced or rewritten file is
read afresh. Files larger than a quarter of the budget are read from disk.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from netboot.tftp.transfer import BytesSource, FileSource

DEFAULT_BUDGET = 512 << 20  # bytes of file content kept in memory


class ContentCache:
    """A least-recently-used cache of whole files, bounded in bytes. One thread only."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[tuple[int, int, int, int], BytesSource] = OrderedDict()

    def load(self, source: FileSource) -> BytesSource | None:
        """The file's bytes from memory (read now if need be), or None if it is too large."""
        info = os.fstat(source.fd)
        if info.st_size > self.budget // 4:
            return None
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached
        data = _read_all(source.fd, info.st_size)
        if len(data) != info.st_size:
            return None  # it changed while being read: serve it from disk this time
        cached = BytesSource(data)
        self._entries[key] = cached
        self.used += len(data)
        while self.used > self.budget:
            _, old = self._entries.popitem(last=False)
            self.used -= old.size
        return cached


def _read_all(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 8 << 20), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
