"""The bytes of a boot file, whoever sends them (TFTP or HTTP): in memory or an open file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol


class Source(Protocol):
    """The bytes of one file: its size and a positional read."""

    size: int

    def read(self, offset: int, length: int) -> bytes | memoryview: ...


@dataclass(frozen=True)
class BytesSource:
    """A file in memory: a client's rendered script, config or initrd part, or a cached file.

    ``read`` returns a view, not a copy: the DATA packet made from it by
    concatenation with its header is then the only copy per block.
    """

    data: bytes
    view: memoryview = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "view", memoryview(self.data))

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes | memoryview:
        return self.view[offset:offset + length]


@dataclass(frozen=True)
class FileSource:
    """An open file, read with pread so a transfer never shares a file position."""

    fd: int
    size: int

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)
