"""LUN records: the root LUN's number and the extra LUNs (2, 3, ...) on a client's target.

LUN 1 is the client's root (see :mod:`netboot.provisioning.root`); the extra
ones are files, block devices or RBD images the admin names (see
:mod:`netboot.provisioning.luns`). Their records live in the inventory's
``luns`` table and go with the client when it is removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from netboot.inventory.backend import Row
from netboot.inventory.store import Inventory

ROOT_LUN = 1  # every client's root: the target, /init, the sanboot URI and the CLI agree on it


class LunKind(StrEnum):
    """What backs an extra LUN (stored as its value in ``luns.kind``)."""

    FILE = "file"
    DEVICE = "device"
    RBD = "rbd"  # an RBD image; its path is ``rbd:POOL/IMAGE``


@dataclass(frozen=True)
class LunRecord:
    """One extra LUN: which client, its number, what backs it and how big it is."""

    mac: str
    lun: int
    path: str
    kind: LunKind
    size: int
    created: float

    @classmethod
    def from_row(cls, row: Row) -> LunRecord:
        return cls(**{**dict(row), "kind": LunKind(row["kind"])})


def extra_luns(inventory: Inventory, mac: str | None = None) -> list[LunRecord]:
    """Extra LUNs of one client, or of every client, in LUN order."""
    if mac is None:
        rows = inventory.query("SELECT * FROM luns ORDER BY mac, lun")
    else:
        rows = inventory.query("SELECT * FROM luns WHERE mac = ? ORDER BY lun", (mac,))
    return [LunRecord.from_row(r) for r in rows]
