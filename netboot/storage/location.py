"""Where a LUN's blocks live: a file (or block device) on this server, or an RBD image in Ceph.

The inventory keeps a location as text (``clients.lun_path``, ``luns.path``): a
path as it is, an RBD image as ``rbd:POOL/IMAGE``. Text without the scheme is
a path, so records made before RBD existed read unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from netboot.errors import ValidationError


class Store(StrEnum):
    """The kind of storage behind a LUN."""

    FILE = "file"  # a regular file or a block device on the server
    RBD = "rbd"  # an image in a Ceph pool, reached through librbd


RBD_SCHEME = "rbd:"


@dataclass(frozen=True)
class Location:
    """A LUN's storage: ``name`` is a path (FILE) or ``POOL/IMAGE`` (RBD)."""

    store: Store
    name: str

    def __str__(self) -> str:
        return f"{RBD_SCHEME}{self.name}" if self.store is Store.RBD else self.name

    @classmethod
    def parse(cls, text: str) -> Location:
        if text.startswith(RBD_SCHEME):
            return rbd_location(*_split(text.removeprefix(RBD_SCHEME), text))
        return cls(Store.FILE, text)

    @property
    def pool(self) -> str:
        return _split(self.name, str(self))[0]

    @property
    def image(self) -> str:
        return _split(self.name, str(self))[1]


def rbd_location(pool: str, image: str) -> Location:
    return Location(Store.RBD, f"{pool}/{image}")


def _split(name: str, text: str) -> tuple[str, str]:
    pool, _, image = name.partition("/")
    if not pool or not image or "/" in image or "@" in image:
        raise ValidationError(f"{text!r} is not an RBD image: write rbd:POOL/IMAGE")
    return pool, image
