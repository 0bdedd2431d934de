"""The registered clients as the DHCP server sees them: the inventory, cached.

A DHCP exchange must not wait for SQLite on every packet, and must not miss a
client registered a second ago. So all clients are read at once and re-read
every ``refresh`` seconds, and a MAC not in the cache is looked up directly:
a new client is answered at once, a changed or removed one within
``refresh`` seconds.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from netboot.inventory import Client, Inventory


class ClientDirectory:
    """Implements :class:`netboot.dhcp.decide.ClientView` over an :class:`Inventory`."""

    def __init__(self, inventory: Inventory, refresh: float = 5.0) -> None:
        self.inventory = inventory
        self.refresh = refresh
        self._by_mac: dict[str, Client] = {}
        self._by_ip: dict[IPv4Address, str] = {}
        self._loaded = float("-inf")

    def tick(self, now: float) -> None:
        """Re-read the inventory if the cache is older than ``refresh`` seconds."""
        if now - self._loaded >= self.refresh:
            clients = self.inventory.clients()
            self._by_mac = {c.mac: c for c in clients}
            self._by_ip = {c.ip: c.mac for c in clients}
            self._loaded = now

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
