"""SAN host records: ordinary Linux servers that use LUNs on a target of their own.

A host does not boot from netboot: it has no MAC, address, root LUN or boot
windows, only a name, the initiator IQN its admin gives, a target under
netboot's prefix and CHAP secrets as a client's. Its LUNs (from 1) are in
:mod:`netboot.inventory.luns`. A host's name and a client's hostname name the
same target IQN and CHAP account, so each is refused where the other has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol

from netboot.errors import Conflict, NotFound
from netboot.inventory.backend import Database, Row
from netboot.inventory.clients import mutual_user
from netboot.inventory.store import Inventory

# The account tgt's discovery target answers with in mutual CHAP: tgt gives that target one
# outgoing account, so every host shares it. '_' is in no host name, so no client's or
# host's account can take this name.
DISCOVERY_MUTUAL_USER = "netboot_discovery"


class Identity(Protocol):
    """What a client and a SAN host both have for iSCSI: the initiator their target admits,
    that target, and their CHAP account and its mutual one."""

    @property
    def initiator_iqn(self) -> str: ...

    @property
    def target_iqn(self) -> str: ...

    @property
    def chap_user(self) -> str: ...

    @property
    def chap_secret(self) -> str: ...

    @property
    def mutual_user(self) -> str: ...

    @property
    def mutual_secret(self) -> str: ...


@dataclass(frozen=True)
class Host:
    """One SAN host. Secrets are left out of ``repr`` so they never reach a log."""

    name: str
    initiator_iqn: str
    target_iqn: str
    chap_user: str
    chap_secret: str = field(repr=False)
    mutual_secret: str = field(repr=False)
    created: float = 0.0

    @property
    def mutual_user(self) -> str:
        return mutual_user(self.chap_user)

    @classmethod
    def from_row(cls, row: Row) -> Host:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class DiscoveryMutual:
    """The account the target answers SendTargets discovery with in mutual CHAP."""

    user: str
    secret: str = field(repr=False)


_COLUMNS = tuple(f.name for f in fields(Host))


def hosts(inventory: Inventory) -> list[Host]:
    """Every SAN host, by name."""
    return [Host.from_row(r) for r in inventory.query("SELECT * FROM hosts ORDER BY name")]


def get_host(inventory: Inventory, name: str) -> Host:
    rows = inventory.query("SELECT * FROM hosts WHERE name = ?", (name,))
    if not rows:
        raise NotFound(f"no SAN host named {name}")
    return Host.from_row(rows[0])


def insert_host(db: Database, host: Host, discovery_secret: str) -> None:
    """Insert inside a caller's transaction, naming the clash if there is one; the first
    host also records the discovery mutual account, with ``discovery_secret``."""
    if db.execute("SELECT name FROM hosts WHERE name = ?", (host.name,)).fetchone():
        raise Conflict(f"a SAN host named {host.name} is already registered")
    clash = db.execute("SELECT mac FROM clients WHERE hostname = ? OR target_iqn = ?",
                       (host.name, host.target_iqn)).fetchone()
    if clash is not None:
        raise Conflict(f"name {host.name} is client {clash[0]}'s hostname (its target and "
                       "CHAP account would be the same)")
    clash = (db.execute("SELECT 'SAN host ' || name FROM hosts WHERE initiator_iqn = ?",
                        (host.initiator_iqn,)).fetchone()
             or db.execute("SELECT 'client ' || mac FROM clients WHERE initiator_iqn = ?",
                           (host.initiator_iqn,)).fetchone())
    if clash is not None:
        raise Conflict(f"initiator IQN {host.initiator_iqn} is already used by {clash[0]}")
    row = {c: getattr(host, c) for c in _COLUMNS}
    db.execute(f"INSERT INTO hosts ({', '.join(_COLUMNS)}) VALUES "
               f"({', '.join('?' for _ in _COLUMNS)})", tuple(row.values()))
    db.execute("INSERT INTO discovery_mutual (id, account, secret) VALUES (1, ?, ?) "
               "ON CONFLICT DO NOTHING", (DISCOVERY_MUTUAL_USER, discovery_secret))


def delete_host(db: Database, name: str) -> Host:
    """Delete a host (its LUN records go with it) inside a caller's transaction."""
    row = db.execute("SELECT * FROM hosts WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no SAN host named {name}")
    db.execute("DELETE FROM hosts WHERE name = ?", (name,))
    return Host.from_row(row)


def discovery_mutual(inventory: Inventory) -> DiscoveryMutual | None:
    """The discovery mutual account, once a host was ever added."""
    rows = inventory.query("SELECT account, secret FROM discovery_mutual")
    return DiscoveryMutual(rows[0]["account"], rows[0]["secret"]) if rows else None
