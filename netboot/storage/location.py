"""Where a LUN's blocks live: a file (or block device) on this server, or an RBD image in Ceph.

The inventory keeps a location as text (``clients.lun_path``, ``luns.path``): a
path as it is, an RBD image as ``rbd:POOL/IMAGE``. Text without the scheme is
a path, so records made before RBD existed read unchanged. A snapshot of an RBD
image (an image version, read-only: an overlay client's lower layer) is
``rbd:POOL/IMAGE@SNAP``, the form tgt's bs_rbd opens (``usr/bs_rbd.c``
``parse_imagepath``: pool before the first ``/``, snapshot after the ``@``).
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
    """A LUN's storage: ``name`` is a path (FILE) or ``POOL/IMAGE[@SNAP]`` (RBD)."""

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

    @property
    def snapshot(self) -> str | None:
        """The RBD snapshot named (read-only), or None: the image itself."""
        return _split(self.name, str(self))[2] if self.store is Store.RBD else None


def rbd_location(pool: str, image: str, snapshot: str | None = None) -> Location:
    return Location(Store.RBD, f"{pool}/{image}" + (f"@{snapshot}" if snapshot else ""))


def _split(name: str, text: str) -> tuple[str, str, str | None]:
    pool, _, rest = name.partition("/")
    image, at, snapshot = rest.partition("@")
    if not pool or not image or "/" in rest or (at and (not snapshot or "@" in snapshot)):
        raise ValidationError(f"{text!r} is not an RBD image: write rbd:POOL/IMAGE "
                              "(a snapshot: rbd:POOL/IMAGE@SNAP)")
    return pool, image, snapshot or None
