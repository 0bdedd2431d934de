"""Leases of machines without a fixed address: a table in memory, kept in the inventory DB.

Registered clients need no lease: their address is theirs in the inventory.
Machines booted under the ``unknown: boot`` policy get one from the dynamic
range. :func:`netboot.dhcp.decide.decide` only reads a :class:`LeaseTable`;
what it wants changed comes back as :class:`Grant`, :class:`Release` and
:class:`Decline` records, which the service applies to the table and, through
:class:`LeaseStore`, to the database (one transaction each, so a kill at any
moment leaves the last acknowledged lease on disk).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from netboot.inventory.store import Inventory


@dataclass(frozen=True, slots=True)
class Lease:
    mac: str
    ip: IPv4Address
    expires: float


@dataclass(frozen=True, slots=True)
class Grant:
    """``mac`` holds ``ip`` until ``expires``; ``persist`` is False for an OFFER's short hold."""

    mac: str
    ip: IPv4Address
    expires: float
    persist: bool = True


@dataclass(frozen=True, slots=True)
class Release:
    mac: str
    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class Decline:
    """A client found ``ip`` in use (RFC 2131 DHCPDECLINE): nobody gets it until ``until``."""

    mac: str
    ip: IPv4Address
    until: float


LeaseChange = Grant | Release | Decline


class LeaseTable:
    """Who holds which dynamic address, and which addresses are declined. Never two MACs
    on one address: granting an address takes it from any (expired) previous holder."""

    def __init__(self, leases: Iterable[Lease] = (),
                 declined: dict[IPv4Address, float] | None = None) -> None:
        self._by_mac: dict[str, Lease] = {}
        self._by_ip: dict[IPv4Address, Lease] = {}
        self._declined = dict(declined or {})
        for lease in leases:
            self._put(lease)

    def __len__(self) -> int:
        return len(self._by_mac)

    def leases(self) -> list[Lease]:
        """Every lease, expired or not, by address."""
        return sorted(self._by_mac.values(), key=lambda lease: lease.ip)

    def declined_until(self, now: float) -> dict[IPv4Address, float]:
        """Addresses still kept out of the pool, and until when."""
        return {ip: until for ip, until in sorted(self._declined.items()) if until > now}

    def of(self, mac: str) -> Lease | None:
        """``mac``'s lease, expired or not."""
        return self._by_mac.get(mac)

    def at(self, ip: IPv4Address) -> Lease | None:
        """The lease on ``ip``, expired or not."""
        return self._by_ip.get(ip)

    def declined(self, ip: IPv4Address, now: float) -> bool:
        return self._declined.get(ip, 0.0) > now

    def declined_count(self, now: float) -> int:
        return len(self.declined_until(now))

    def free_for(self, ip: IPv4Address, mac: str, now: float) -> bool:
        """``ip`` is not declined and no other MAC holds an unexpired lease on it."""
        lease = self._by_ip.get(ip)
        return not self.declined(ip, now) and (
            lease is None or lease.mac == mac or lease.expires <= now
        )

    def apply(self, change: LeaseChange) -> None:
        if isinstance(change, Grant):
            self._drop(self._by_mac.get(change.mac))
            self._drop(self._by_ip.get(change.ip))
            self._put(Lease(change.mac, change.ip, change.expires))
        elif isinstance(change, Release):
            lease = self._by_mac.get(change.mac)
            if lease is not None and lease.ip == change.ip:
                self._drop(lease)
        else:
            self._declined[change.ip] = change.until
            lease = self._by_ip.get(change.ip)
            if lease is not None and lease.mac == change.mac:
                self._drop(lease)

    def _put(self, lease: Lease) -> None:
        self._by_mac[lease.mac] = lease
        self._by_ip[lease.ip] = lease

    def _drop(self, lease: Lease | None) -> None:
        if lease is not None:
            self._by_mac.pop(lease.mac, None)
            self._by_ip.pop(lease.ip, None)


class LeaseStore:
    """The ``dhcp_leases`` and ``dhcp_declined`` tables of the inventory database."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def load(self, now: float) -> LeaseTable:
        """Every lease (expired ones too: ``netboot dhcp leases`` shows them) and the addresses
        still declined at ``now``. Only reads: expired declines are deleted by :meth:`save`."""
        leases = [Lease(r[0], IPv4Address(r[1]), r[2]) for r in
                  self.inventory.query("SELECT mac, ip, expires FROM dhcp_leases")]
        declined = {IPv4Address(r[0]): r[1] for r in
                    self.inventory.query("SELECT ip, until FROM dhcp_declined WHERE until > ?",
                                         (now,))}
        return LeaseTable(leases, declined)

    def save(self, change: LeaseChange, now: float) -> None:
        """Write one change in its own transaction (an OFFER's hold is not written), and drop
        the declines that have run out by ``now``."""
        if isinstance(change, Grant) and not change.persist:
            return
        with self.inventory.transaction() as db:
            db.execute("DELETE FROM dhcp_declined WHERE until <= ?", (now,))
            if isinstance(change, Grant):
                db.execute("DELETE FROM dhcp_leases WHERE ip = ? AND mac <> ?",
                           (str(change.ip), change.mac))
                db.execute("INSERT INTO dhcp_leases (mac, ip, expires, updated)"
                           " VALUES (?, ?, ?, ?) ON CONFLICT (mac) DO UPDATE SET ip = excluded.ip,"
                           " expires = excluded.expires, updated = excluded.updated",
                           (change.mac, str(change.ip), change.expires, now))
            elif isinstance(change, Release):
                db.execute("DELETE FROM dhcp_leases WHERE mac = ? AND ip = ?",
                           (change.mac, str(change.ip)))
            else:
                db.execute("INSERT INTO dhcp_declined (ip, mac, until) VALUES (?, ?, ?)"
                           " ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac,"
                           " until = excluded.until",
                           (str(change.ip), change.mac, change.until))
                db.execute("DELETE FROM dhcp_leases WHERE mac = ? AND ip = ?",
                           (change.mac, str(change.ip)))
