"""`netboot serve`: one process, several services, started together and stopped in reverse.

Each subsystem (DHCP, TFTP, HTTP, target reconcile) is a :class:`Service`
that runs its own threads; this module only composes them and turns SIGTERM
or SIGINT into an orderly stop.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Protocol

from netboot import iproute
from netboot.config import Config, DhcpMode
from netboot.errors import NetbootError
from netboot.inventory import Inventory
from netboot.target.service import TargetService

log = logging.getLogger(__name__)
SERVE_READY = "serving:"  # logged once every service listens; the lab and tests wait for it

InventoryFactory = Callable[[], Inventory]


class Service(Protocol):
    """A part of the server. ``start`` returns once it is listening; ``stop`` once it has let go."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """The services ``config`` asks for, in start order."""
    from netboot.bootserve import boot_file_services  # it imports Service from here

    services: list[Service] = []
    services += boot_file_services(config, open_inventory)
    if config.dhcp.mode is not DhcpMode.OFF:
        from netboot.dhcp.service import DhcpService  # it imports this module's InventoryFactory

        services.append(DhcpService(config, open_inventory))
    if config.dhcp.router_advertisements:
        from netboot.dhcp.ra import RouterAdvertiser  # scapy: loaded only when serving

        services.append(RouterAdvertiser(config.server.interface))
    if config.target.manage:
        services.append(TargetService(config, open_inventory))
    return services


def check_interface(config: Config) -> None:
    """Fail early, and clearly, when the boot interface or the server's address is not there."""
    interface, address = config.server.interface, config.server.address
    if not iproute.link_exists(interface):
        raise NetbootError(f"server.interface {interface} does not exist on this host "
                           "(see 'ip link'); fix it in the config")
    if address not in {a.ip for a in iproute.ipv4_addresses(interface)}:
        raise NetbootError(f"server.address {address} is not configured on {interface}: "
                           f"add it (ip addr add {address}/{config.dhcp.subnet.prefixlen} "
                           f"dev {interface}) or fix the config")


def run(services: list[Service], stop: threading.Event | None = None) -> None:
    """Start ``services``, wait until SIGTERM/SIGINT (or ``stop``), then stop them in reverse."""
    if not services:
        raise NetbootError("nothing to serve: every service is turned off in the config")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    started: list[Service] = []
    try:
        for service in services:
            try:
                service.start()
            except OSError as err:
                raise NetbootError(f"{service.name} could not start: {err}") from None
            started.append(service)
            log.info("%s started", service.name)
        log.info("%s %s", SERVE_READY, ", ".join(s.name for s in services))
        stop.wait()
        log.info("stopping")
    finally:
        for service in reversed(started):
            try:
                service.stop()
            except Exception:  # one service failing to stop must not keep the others running
                log.exception("%s did not stop cleanly", service.name)
