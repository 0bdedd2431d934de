"""The tgtd daemon itself: is one running on our control port, start one, stop one.

tgtd holds a POSIX lock on ``/var/run/tgtd/socket.<port>.lock`` for as long as
it runs; asking the kernel who holds it (F_GETLK) tells whether a tgtd is
alive, and its pid, without talking to the daemon. A changed pid means tgtd
was restarted and has forgotten every target.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import signal
import struct
import subprocess
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from netboot.host.iproute import in_netns
from netboot.host.run import not_installed
from netboot.names import url_host
from netboot.target.model import TargetError, TargetUnreachable
from netboot.target.tgtmgmt import Mode, Operation, Request, call, socket_path
from netboot.target.tgtshow import parse_targets

log = logging.getLogger(__name__)

IPC_DIR = Path("/var/run/tgtd")
CONTROL_PORT_MAX = 32767  # tgtd keeps the port in a C short
_FLOCK = "hhqqi4x"  # struct flock on Linux (l_type, l_whence, l_start, l_len, l_pid)


def lock_path(control_port: int) -> Path:
    """The file tgtd locks while it runs: its socket's path plus ``.lock`` (``usr/mgmt.c``)."""
    return Path(f"{socket_path(control_port)}.lock")


def free_control_port() -> int:
    """A control port (1000..32767) whose socket and lock files nobody has: no tgtd uses it.

    Random, so parallel test runs and labs rarely even try the same one.
    """
    for _ in range(100):
        port = 1000 + secrets.randbelow(CONTROL_PORT_MAX - 1000)
        if tgtd_pid(port) is None and not socket_path(port).exists() \
                and not lock_path(port).exists():
            return port
    raise TargetError(f"no free tgtd control port found under {IPC_DIR}")


def tgtd_pid(control_port: int) -> int | None:
    """The pid of the tgtd serving ``control_port``, or None when none runs."""
    try:
        fd = os.open(lock_path(control_port), os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
        kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else pid


def start_tgtd(control_port: int, portal: tuple[IPv4Address | IPv6Address, int], *,
               timeout: float = 10.0, netns: str | None = None) -> int:
    """Start a tgtd that listens on ``portal`` only; return its pid once it answers.

    ``netns``: start it in that network namespace (its control socket is a file, so it
    is managed from here all the same).

    A tgtd that already holds the control port (someone was quicker) is
    returned as it is. tgtd that cannot bind its portal silently listens on
    every address instead, so the portal is checked and such a tgtd stopped.
    """
    running = tgtd_pid(control_port)
    if running is not None:
        return running
    address, port = portal
    pid_file = IPC_DIR / f"netboot.{control_port}.pid"
    pid_file.unlink(missing_ok=True)
    argv = ["tgtd", "-C", str(control_port), "--pid-file", str(pid_file),
            "--iscsi", f"portal={url_host(address)}:{port}"]
    if netns is not None:
        argv = in_netns(netns, argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise TargetError(not_installed("tgtd")) from None
    if done.returncode != 0:
        raise TargetError(f"tgtd -C {control_port} failed to start: "
                          f"{done.stderr.strip() or done.returncode}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = tgtd_pid(control_port)
        try:
            portals = call(control_port, Request(Mode.PORTAL, Operation.SHOW),
                           what="list portals") if pid else None
        except TargetUnreachable:
            portals = None
        if pid is None or portals is None:
            time.sleep(0.05)
            continue
        if f"{url_host(address)}:{port}," not in portals:
            ours = pid_file.is_file() and pid_file.read_text().strip() == str(pid)
            if ours:
                stop_tgtd(control_port)
            raise TargetError(f"tgtd could not listen on {address}:{port} (is the address on "
                              "this host, the port free?)")
        log.info("started tgtd (pid %d) on portal %s:%d, control port %d",
                 pid, address, port, control_port)
        return pid
    raise TargetError(f"tgtd on control port {control_port} did not come up in {timeout:.0f} s")


def stop_tgtd(control_port: int, *, timeout: float = 10.0) -> None:
    """Stop tgtd the way it listens to: targets deleted (forced), then the system.

    tgtd ignores SIGTERM; SIGKILL is the last resort when it does not exit in time.
    """
    pid = tgtd_pid(control_port)
    if pid is not None:
        try:
            listing = call(control_port, Request(Mode.TARGET, Operation.SHOW),
                           what="list targets", timeout=timeout)
            for target in parse_targets(listing):
                call(control_port, Request(Mode.TARGET, Operation.DELETE, tid=target.tid,
                                           force=True),
                     what=f"delete target {target.state.iqn}", timeout=timeout)
            call(control_port, Request(Mode.SYSTEM, Operation.DELETE, force=True),
                 what="stop tgtd", timeout=timeout)
        except TargetUnreachable:
            pass
        except TargetError as err:
            log.warning("tgtd (pid %d) did not stop cleanly: %s", pid, err)
        deadline = time.monotonic() + timeout
        while tgtd_pid(control_port) == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if tgtd_pid(control_port) == pid:
            log.warning("tgtd (pid %d) did not stop in %.0f s; killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
            while tgtd_pid(control_port) == pid:
                time.sleep(0.05)
        log.info("stopped tgtd (pid %d) on control port %d", pid, control_port)
    _remove_ipc_files(control_port, with_lock=False)


def forget_control_port(control_port: int) -> None:
    """Delete every file a stopped tgtd left, its lock too (tests, at the very end).

    Only when nothing can start a tgtd on this port at the same time: one that
    opened the old lock file could lock it after the unlink, unseen by the next.
    """
    _remove_ipc_files(control_port, with_lock=True)


def _remove_ipc_files(control_port: int, *, with_lock: bool) -> None:
    """Delete a stopped tgtd's control socket (and lock), unless a new tgtd holds the lock.

    While the lock is held here no tgtd can start (it would find it taken and
    exit), so a fresh daemon's socket is never removed.
    """
    try:
        fd = os.open(lock_path(control_port), os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # a new tgtd holds it: its files stay
    try:
        socket_path(control_port).unlink(missing_ok=True)
        (IPC_DIR / f"netboot.{control_port}.pid").unlink(missing_ok=True)
        if with_lock:
            lock_path(control_port).unlink(missing_ok=True)
    finally:
        os.close(fd)
