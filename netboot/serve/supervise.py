"""`netboot serve`: one process, several services, started together and stopped in reverse.

Each subsystem (DHCP, TFTP, HTTP, target reconcile) is a
:class:`~netboot.serve.service.Service` that runs its own threads
(:mod:`netboot.serve.compose` picks them); this module checks the host, clears
what an interrupted ``client add`` left, starts them, and turns SIGTERM or
SIGINT into an orderly stop. A service thread that dies (see
:mod:`netboot.threads`) stops the others too and ends serve with an
error naming it, rather than leaving it to serve on without that part.
"""

from __future__ import annotations

import logging
import signal
import threading

from netboot.config import Config
from netboot.errors import NetbootError
from netboot.host import iproute
from netboot.inventory.store import Inventory
from netboot.provisioning.root import recover_interrupted
from netboot.serve.compose import build_services
from netboot.serve.service import SERVE_READY, Service
from netboot.threads import Supervisor

log = logging.getLogger(__name__)


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
    """Start ``services``, wait until SIGTERM/SIGINT (or ``stop``) or until a thread of one
    dies, then stop them in reverse; a death raises, so ``netboot serve`` exits non-zero."""
    if not services:
        raise NetbootError("nothing to serve: every service is turned off in the config")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    supervisor = Supervisor(stop)
    started: list[Service] = []
    try:
        with supervisor.starting():
            for service in services:
                try:
                    service.start()
                except OSError as err:
                    raise NetbootError(f"{service.name} could not start: {err}") from None
                started.append(service)
                log.info("%s started", service.name)
        if not stop.is_set():
            log.info("%s %s", SERVE_READY, ", ".join(s.name for s in services))
            stop.wait()
        if supervisor.death is None:
            log.info("stopping")
        else:
            log.error("stopping every service: %s", supervisor.death)
    finally:
        supervisor.stop_all(started)
    if supervisor.death is not None:
        raise NetbootError(f"serve stopped: {supervisor.death}")


def serve(config: Config, stop: threading.Event | None = None) -> None:
    """``netboot serve``: check the host, recover interrupted provisioning once, then run."""
    check_interface(config)
    with Inventory(config.storage.database) as inventory:
        recover_interrupted(config, inventory)
    run(build_services(config, lambda: Inventory(config.storage.database)), stop)
