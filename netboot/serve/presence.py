"""This server's row in the inventory's ``servers`` table (:mod:`netboot.inventory.servers`):
written when serve starts, refreshed every heartbeat, marked stopped when it stops.

On a shared inventory the start is refused while another running server's
dynamic range overlaps this one's: each keeps its unknown machines' leases in
its own memory, so overlapping ranges would offer one address twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from netboot.config import Config
from netboot.errors import NetbootError
from netboot.inventory.servers import HEARTBEAT, PortalRole, ServerRecord, range_clashes
from netboot.inventory.store import Inventory, InventoryFactory
from netboot.target.failover.portal import fenced, holding
from netboot.threads import start_thread

log = logging.getLogger(__name__)


def portal_role(config: Config) -> PortalRole:
    """What this server does for the portal now (with failover, as keepalived left it)."""
    if not config.target.manage:
        return PortalRole.NONE
    if not config.target.failover.enabled:
        return PortalRole.HOLDER
    if fenced(config):
        return PortalRole.FENCED
    return PortalRole.HOLDER if holding(config) else PortalRole.STANDBY


def own_record(config: Config, role: PortalRole, started: float, now: float) -> ServerRecord:
    start, end = config.dhcp.dynamic_range
    return ServerRecord(config.server_name, config.server.address, start, end, role,
                        started, now)


class Presence:
    """A :class:`~netboot.serve.service.Service`: this server's heartbeat in the inventory."""

    name = "presence"

    def __init__(self, config: Config, open_inventory: InventoryFactory,
                 role: Callable[[], PortalRole] | None = None,
                 interval: float = HEARTBEAT) -> None:
        self.config = config
        self.open_inventory = open_inventory
        self.role = role or (lambda: portal_role(config))
        self.interval = interval
        self._inventory: Inventory | None = None
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._inventory = self.open_inventory()
        self._started = now = time.time()
        me = own_record(self.config, self.role(), self._started, now)
        try:
            clashes = range_clashes(me, self._inventory.announce_server(me), now)
            if clashes:
                other = clashes[0]
                self._inventory.announce_server(replace(me, stopped=now))
                raise NetbootError(
                    f"dhcp dynamic range {me.range_start}-{me.range_end} overlaps that of "
                    f"server {other.name} ({other.address}: {other.range_start}-"
                    f"{other.range_end}), which serves the same inventory: give each server "
                    f"its own part of the subnet (dhcp.range_start, dhcp.range_end)")
        except BaseException:
            self._inventory.close()
            self._inventory = None
            raise
        log.info("server %s registered in the inventory (portal: %s)", me.name, me.portal)
        self._stop.clear()
        self._thread = start_thread(self.name, "heartbeat", self._beat)

    def _beat(self) -> None:
        assert self._inventory is not None
        while not self._stop.wait(self.interval):
            now = time.time()
            self._inventory.heartbeat(own_record(self.config, self.role(), self._started, now))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._inventory is not None:
            now = time.time()
            self._inventory.announce_server(replace(
                own_record(self.config, self.role(), self._started, now), stopped=now))
            self._inventory.close()
            self._inventory = None
