"""The registered clients as the DHCP server sees them: the inventory, cached.

A DHCP exchange must not wait for the database on every packet, and must not miss a
client registered a second ago. So all clients are read at once and re-read
every ``refresh`` seconds when the inventory's directory version moved since
(a client added or removed, or its address or hostname changed: not the
stages, windows and tokens written all through every boot, so a boot storm
costs no re-read, and the cost of a DHCP answer does not grow with the number
of registered clients), and a MAC not in the cache is looked up directly: a
new client is answered at once, a changed or removed one within ``refresh``
seconds.

A re-read keeps the very record object of every client whose DHCP answer
cannot have changed (same address and hostname), because prepared replies
stay valid only while the directory holds the record they were made from:
boot stages, written all through every boot, must not send all clients back
through :func:`netboot.dhcp.decide.decide` at once on each re-read.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from netboot.inventory.clients import Client
from netboot.inventory.store import Inventory


def answered_alike(old: Client, new: Client) -> bool:
    """Whether :func:`netboot.dhcp.decide.decide` treats two records of one MAC the same:
    it reads a client's address and hostname, nothing else."""
    return (old.ip, old.hostname) == (new.ip, new.hostname)


class ClientDirectory:
    """Implements :class:`netboot.dhcp.decide.ClientView` over an :class:`Inventory`."""

    def __init__(self, inventory: Inventory, refresh: float = 5.0) -> None:
        self.inventory = inventory
        self.refresh = refresh
        self._by_mac: dict[str, Client] = {}
        self._by_ip: dict[IPv4Address, str] = {}
        self._loaded = float("-inf")
        self._mark: int | None = None

    def tick(self, now: float) -> None:
        """Re-read the inventory if the cache is older than ``refresh`` seconds and the
        directory version moved since."""
        if now - self._loaded < self.refresh:
            return
        self._loaded = now
        mark = self.inventory.directory_version()
        if mark == self._mark:
            return
        self._mark = mark
        kept = self._by_mac
        by_mac = {}
        for client in self.inventory.clients():
            old = kept.get(client.mac)
            by_mac[client.mac] = old if old is not None and answered_alike(old, client) \
                else client
        self._by_mac = by_mac
        self._by_ip = {c.ip: c.mac for c in by_mac.values()}

    def holds(self, mac: str) -> bool:
        """Whether ``mac`` is a client in the cache (answered without reading the disk)."""
        return mac in self._by_mac

    def find(self, mac: str) -> Client | None:
        client = self._by_mac.get(mac)
        if client is None:
            client = self.inventory.find(mac)
            if client is not None:
                self._by_mac[mac] = client
                self._by_ip[client.ip] = mac
        return client

    def owner(self, ip: IPv4Address) -> str | None:
        return self._by_ip.get(ip)
