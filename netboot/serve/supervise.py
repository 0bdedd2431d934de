"""`netboot serve`: services started together and stopped in reverse, in two processes.

As root, serve keeps the parts that need root (the target, boot window
preparation) and runs the network part (DHCP, TFTP, HTTP) as ``server.user``
(see :mod:`netboot.serve.network`); with ``server.user: root``, or started by
another user, everything runs in one process.

Each subsystem (DHCP, TFTP, HTTP, target reconcile) is a
:class:`~netboot.serve.service.Service` that runs its own threads
(:mod:`netboot.serve.compose` picks them); this module checks the host, clears
what an interrupted ``client add`` left, starts them, and turns SIGTERM or
SIGINT into an orderly stop. A service thread that dies (see
:mod:`netboot.threads`) stops the others too and ends serve with an
error naming it, rather than leaving it to serve on without that part.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from netboot.arch import Arch
from netboot.config import ROOT_USER, Config
from netboot.counters import clear_snapshots, snapshot_dir
from netboot.errors import NetbootError
from netboot.host import iproute
from netboot.host.sdnotify import Notifier
from netboot.host.users import ServiceUser, blocking_directory, service_user, share
from netboot.inventory.store import open_inventory
from netboot.provisioning.root import recover_interrupted
from netboot.serve.compose import Part, build_services
from netboot.serve.network import NETWORK_STOP_DEADLINE, READY
from netboot.serve.service import SERVE_READY, Service
from netboot.storage.model import StorageError
from netboot.threads import Supervisor

log = logging.getLogger(__name__)

# Seconds the services have to stop: less than a service manager's grace (systemd's
# TimeoutStopSec, 90 s) and than the test harness's (15 s), so the stacks get written.
STOP_DEADLINE = 12.0


def check_interface(config: Config) -> None:
    """Fail early, and clearly, when the boot interface or the server's address is not there."""
    interface, address = config.server.interface, config.boot_address
    if not iproute.link_exists(interface):
        raise NetbootError(f"server.interface {interface} does not exist on this host "
                           "(see 'ip link'); fix it in the config")
    if address.version == 6:  # an IPv6-only boot VLAN (Config.ipv6_only)
        key, present = "dhcp6.address", {a.ip for a in iproute.ipv6_addresses(interface)}
        prefix = config.dhcp6.subnet.prefixlen if config.dhcp6.subnet else 64
    else:
        key, present = "server.address", {a.ip for a in iproute.ipv4_addresses(interface)}
        prefix = config.dhcp.subnet.prefixlen
    if address not in present:
        raise NetbootError(f"{key} {address} is not configured on {interface}: add it (ip addr "
                           f"add {address}/{prefix} dev {interface}) or fix the config")


def run(services: list[Service], stop: threading.Event | None = None,
        ready: Callable[[], None] | None = None,
        stop_deadline: float = STOP_DEADLINE, notifier: Notifier | None = None) -> None:
    """Start ``services``, wait until SIGTERM/SIGINT (or ``stop``) or until a thread of one
    dies, then stop them in reverse; a death raises, so ``netboot serve`` exits non-zero.

    Once all listen, ``ready`` is called (the network part tells its parent), or else the
    :data:`SERVE_READY` line is logged and systemd told (``notifier``: READY, then a
    watchdog ping every half WatchdogSec= while no service died, STOPPING at the end;
    nothing outside systemd). A stop that takes longer than ``stop_deadline``
    seconds writes every thread's stack to stderr and ends the process with status 1
    (:func:`faulthandler.dump_traceback_later`, which works even if Python is stuck): a
    service manager's kill would tell nobody what held it."""
    if not services:
        raise NetbootError("nothing to serve: every service is turned off in the config")
    stop = stop or threading.Event()
    notifier = notifier or Notifier()
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
            # Everything made so far lives as long as serve (modules, config, the client
            # directory): out of the collector's sight, a full collection no longer walks
            # it. Measured: a 43-45 ms DHCP p99 at one step of the bench, gone with this.
            gc.freeze()
            if ready is not None:
                ready()
            else:
                names = ", ".join(s.name for s in services)
                log.info("%s %s", SERVE_READY, names)
                notifier.ready(f"{SERVE_READY} {names}")
            while not stop.wait(notifier.watchdog_interval):
                notifier.ping()  # stop is set when a service's thread dies: no more pings
        if supervisor.death is None:
            log.info("stopping")
            notifier.stopping("stopping")
        else:
            log.error("stopping every service: %s", supervisor.death)
            notifier.stopping(f"stopping: {supervisor.death}")
    finally:
        faulthandler.dump_traceback_later(stop_deadline, exit=True)
        try:
            supervisor.stop_all(started)
        finally:
            faulthandler.cancel_dump_traceback_later()
    if supervisor.death is not None:
        raise NetbootError(f"serve stopped: {supervisor.death}")


def serve(config: Config, stop: threading.Event | None = None) -> None:
    """``netboot serve``: check the host, recover interrupted provisioning once, then run,
    split in two processes unless ``server.user`` is root (see netboot.serve.network)."""
    notifier = Notifier.from_environment()  # before any child could inherit its socket
    check_interface(config)
    with open_inventory(config) as inventory:
        try:
            recover_interrupted(config, inventory)
        except StorageError as err:  # Ceph away: boots of file roots and DHCP still serve
            log.error("could not clear interrupted provisioning now (the next `client add` "
                      "will): %s", err)
    clear_snapshots(snapshot_dir(config.storage.state_dir))  # the state dir exists by now
    opener = partial(open_inventory, config)
    if config.server.user == ROOT_USER or os.geteuid() != 0:
        run(build_services(config, opener), stop, notifier=notifier)
        return
    user = service_user(config.server.user)
    hand_state_over(config, user)
    # Held open to the end: the -wal and -shm files stay, so the network part, which cannot
    # create files in the state dir, never has to.
    with opener():
        run(build_services(config, opener, Part.ROOT, user), stop, notifier=notifier)


def hand_state_over(config: Config, user: ServiceUser) -> None:
    """Share what the network part needs with ``user``'s group: the inventory read-write
    (a PostgreSQL inventory's password file read-only), the boot files netboot keeps in its
    state dir read-only (root stays their owner, so the network part cannot change what
    clients boot); then check it reaches each, or raise a NetbootError naming the
    directory in its way."""
    state = config.storage.state_dir
    database = config.storage.database
    share(state, user)
    share(snapshot_dir(state), user, write=True)  # its counters (netboot.counters)
    for path in (database, *(Path(f"{database}{s}") for s in ("-wal", "-shm"))):
        if path.exists():
            share(path, user, write=True)
    password_file = config.inventory.password_file
    if password_file is not None:
        share(password_file, user)
    boot_files = [(f"the {arch} {what}", path) for arch in Arch
                  for what, path in (("kernel", config.kernel_file(arch)),
                                     ("initramfs", config.initramfs_file(arch)))
                  if arch is not Arch.AMD64 and path.exists()]  # amd64's: boot.kernel...
    for served in (config.tftp_root_path, config.kernel_path, config.initramfs_path,
                   *(path for _, path in boot_files)):
        if state not in served.parents or not served.exists():
            continue  # not netboot's: the admin's permissions hold
        for directory in reversed(served.parents):
            if state in directory.parents:
                share(directory, user)
        for path in (served, *(served.rglob("*") if served.is_dir() else ())):
            share(path, user)
    assert config.source is not None  # the network part reads the same file
    reached = [("the config", config.source),
               ("storage.state_dir", state), ("server.tftp_root", config.tftp_root_path),
               ("boot.kernel", config.kernel_path), ("boot.initramfs", config.initramfs_path),
               *boot_files]
    if password_file is not None:
        reached.append(("inventory.password_file", password_file))
    for what, path in reached:
        blocked = blocking_directory(path, user)
        if blocked is not None:
            raise NetbootError(
                f"server.user {user.name} cannot reach {what} {path}: {blocked} is not "
                f"searchable by it (mode {blocked.stat().st_mode & 0o7777:04o}); allow it "
                f"(chmod o+x), move the path, or set server.user: {ROOT_USER}")


def serve_network_part(config: Config, ready_fd: int) -> None:
    """``netboot serve --network-part``: the DHCP, TFTP and HTTP of a split serve, run as
    server.user by the root part, which it tells through ``ready_fd`` when all listen."""
    if os.geteuid() == 0:
        raise NetbootError("the network part must not run as root: `netboot serve` starts it")

    def ready() -> None:
        os.write(ready_fd, READY)
        os.close(ready_fd)
        log.info("network part serving as uid %d", os.geteuid())

    run(build_services(config, partial(open_inventory, config), Part.NETWORK),
        ready=ready, stop_deadline=NETWORK_STOP_DEADLINE)
