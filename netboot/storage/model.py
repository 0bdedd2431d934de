"""Storage records every backend speaks: golden images, their layout, and one error base."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from netboot.errors import NetbootError, ValidationError
from netboot.names import validate_image_name
from netboot.storage.location import Location, Store


class StorageError(NetbootError):
    """A storage backend refused or failed an operation; the message says which and why."""


class ImageError(StorageError):
    """Building, importing or removing an image failed."""


class Layout(enum.Enum):
    """What an image holds, read from its first bytes (nothing stored beside it).

    A FILESYSTEM (ext2/3/4 from byte 0) is what netboot's /init mounts (method
    ``initramfs``); a DISK (an MBR partition table, made by ``image build
    --debootstrap --sanboot``) boots its own GRUB and kernel through iPXE
    ``sanboot``.
    """

    FILESYSTEM = "filesystem"
    DISK = "disk"
    UNKNOWN = "unknown"


EXT_MAGIC = (1080, b"\x53\xef")  # an ext2/3/4 superblock's s_magic (0xEF53, little-endian)
MBR_SIGNATURE = (510, b"\x55\xaa")  # the boot sector's last two bytes
HEAD_BYTES = 2048  # enough of an image's start to tell its layout


def layout_of(head: bytes) -> Layout:
    """An image's layout from its first :data:`HEAD_BYTES` bytes."""
    for (offset, magic), layout in ((EXT_MAGIC, Layout.FILESYSTEM), (MBR_SIGNATURE, Layout.DISK)):
        if head[offset:offset + len(magic)] == magic:
            return layout
    return Layout.UNKNOWN


VERSION_MARK = "@"  # NAME@N: version N of image NAME


@dataclass(frozen=True)
class ImageRef:
    """An image as people name it: ``NAME`` (its newest version) or ``NAME@N``."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}{VERSION_MARK}{self.version}"


def parse_image_ref(text: str) -> ImageRef:
    """``NAME`` or ``NAME@N`` as an :class:`ImageRef`; a clear error otherwise."""
    name, mark, number = text.partition(VERSION_MARK)
    validate_image_name(name)
    if not mark:
        return ImageRef(name)
    if not number.isdigit() or int(number) < 1:
        raise ValidationError(f"image {text!r}: the version after {VERSION_MARK!r} is a "
                              "number from 1 (NAME@N; NAME alone is the newest)")
    return ImageRef(name, int(number))


@dataclass(frozen=True)
class Image:
    """One version of a golden image and what it costs: apparent size and bytes really
    allocated. Every build or import of a name makes its next version, never changed
    after (a file ``NAME@N.img``, or an RBD snapshot ``v<N>``); ``made`` says how."""

    name: str
    location: Location
    size: int
    used: int
    created: float
    version: int
    clients: tuple[str, ...] = ()
    layout: Layout = Layout.FILESYSTEM
    made: str = ""

    @property
    def ref(self) -> str:
        """``NAME@N``: how a client record names the version it was cloned from."""
        return str(ImageRef(self.name, self.version))

    @property
    def path(self) -> Path:
        """The image's file (file store only)."""
        if self.location.store is not Store.FILE:
            raise StorageError(f"image {self.name} is an RBD image ({self.location}), not a file")
        return Path(self.location.name)
