"""LUN records: the numbers LUNs get, and the LUNs admins add to clients' and hosts' targets.

A client's LUN 1 is its root (see :mod:`netboot.provisioning.root`); the
LUNs added to it are 2, 3, ... A SAN host has no root, so its LUNs are 1, 2,
... as on any storage array. The added ones are files, block devices or RBD
images the admin names (see :mod:`netboot.provisioning.luns`); their records
live in the inventory's ``luns`` (clients') and ``host_luns`` tables and go
with their owner when it is removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from netboot import names
from netboot.errors import NotFound, ValidationError
from netboot.inventory.backend import Row
from netboot.inventory.hosts import get_host
from netboot.inventory.store import Inventory

ROOT_LUN = 1  # every client's root: the target, /init, the sanboot URI and the CLI agree on it
# An overlay client's lower layer (its image version, shared and read-only); LUN 1 is then
# its upper layer. The last single-level LUN number, so added LUNs keep 2, 3, ... below it.
LOWER_LUN = 255
FIRST_HOST_LUN = 1  # a host has no root; its first LUN is 1, where initiators look first


class LunKind(StrEnum):
    """What backs an added LUN (stored as its value in ``kind``)."""

    FILE = "file"
    DEVICE = "device"
    RBD = "rbd"  # an RBD image; its path is ``rbd:POOL/IMAGE``


class OwnerKind(StrEnum):
    """Whose target a LUN is on."""

    CLIENT = "client"
    HOST = "host"


# each kind's table, and the column naming the owner in it
_TABLES = {OwnerKind.CLIENT: ("luns", "mac"), OwnerKind.HOST: ("host_luns", "host")}


@dataclass(frozen=True)
class LunOwner:
    """A client, by its normalised MAC, or a SAN host, by its name."""

    kind: OwnerKind
    key: str

    @classmethod
    def parse(cls, text: str) -> LunOwner:
        """What a user typed: a text spelled as a MAC is a client's (and must be a usable
        MAC); anything else is a host's name."""
        if names.looks_like_mac(text):
            return cls(OwnerKind.CLIENT, names.normalize_mac(text))
        try:
            return cls(OwnerKind.HOST, names.validate_host_name(text))
        except ValidationError as err:
            raise ValidationError(f"{text!r} is neither a client's MAC address nor a SAN "
                                  f"host's name ({err})") from None

    @property
    def first_lun(self) -> int:
        """The number of the first LUN added to its target."""
        return ROOT_LUN + 1 if self.kind is OwnerKind.CLIENT else FIRST_HOST_LUN

    @property
    def table(self) -> str:
        return _TABLES[self.kind][0]

    @property
    def column(self) -> str:
        return _TABLES[self.kind][1]

    def target_iqn(self, inventory: Inventory) -> str:
        """Its target's IQN; NotFound, naming it, if it is not registered."""
        if self.kind is OwnerKind.CLIENT:
            return inventory.get(self.key).target_iqn
        try:
            return get_host(inventory, self.key).target_iqn
        except NotFound:
            raise NotFound(f"no SAN host named {self.key} (and {self.key!r} is not a MAC "
                           "address, so no client)") from None

    def __str__(self) -> str:
        return f"{'client' if self.kind is OwnerKind.CLIENT else 'SAN host'} {self.key}"


@dataclass(frozen=True)
class LunRecord:
    """One added LUN: whose (a client's MAC or a host's name), its number, what backs it and
    how big it is."""

    owner: str
    lun: int
    path: str
    kind: LunKind
    size: int
    created: float

    @classmethod
    def from_row(cls, row: Row) -> LunRecord:
        return cls(**{**dict(row), "kind": LunKind(row["kind"])})


def _luns(inventory: Inventory, kind: OwnerKind, key: str | None) -> list[LunRecord]:
    table, column = _TABLES[kind]
    select = f"SELECT {column} AS owner, lun, path, kind, size, created FROM {table}"
    if key is None:
        rows = inventory.query(f"{select} ORDER BY {column}, lun")
    else:
        rows = inventory.query(f"{select} WHERE {column} = ? ORDER BY lun", (key,))
    return [LunRecord.from_row(r) for r in rows]


def extra_luns(inventory: Inventory, mac: str | None = None) -> list[LunRecord]:
    """LUNs added to one client, or to every client, in LUN order."""
    return _luns(inventory, OwnerKind.CLIENT, mac)


def host_luns(inventory: Inventory) -> list[LunRecord]:
    """The LUNs of every SAN host, by host and LUN."""
    return _luns(inventory, OwnerKind.HOST, None)


def luns_of(inventory: Inventory, owner: LunOwner) -> list[LunRecord]:
    """The added LUNs of ``owner``, in LUN order."""
    return _luns(inventory, owner.kind, owner.key)
