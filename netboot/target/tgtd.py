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
import signal
import struct
import subprocess
import time
from ipaddress import IPv4Address
from pathlib import Path

from netboot.target.model import TargetError, TargetUnreachable
from netboot.target.tgtshow import parse_targets

log = logging.getLogger(__name__)

IPC_DIR = Path("/var/run/tgtd")
CONTROL_PORT_MAX = 32767  # tgtd keeps the port in a C short
_FLOCK = "hhqqi4x"  # struct flock on Linux (l_type, l_whence, l_start, l_len, l_pid)


def lock_path(control_port: int) -> Path:
    return IPC_DIR / f"socket.{control_port}.lock"


def socket_path(control_port: int) -> Path:
    return IPC_DIR / f"socket.{control_port}"


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


def tgtadm(control_port: int, *args: str, what: str, timeout: float = 30.0) -> str:
    """Run one ``tgtadm --lld iscsi`` call on our control port; its stdout, or a TargetError.

    ``args`` may hold a CHAP secret: errors name ``what`` and tgtadm's message, never ``args``.
    """
    argv = ["tgtadm", "-C", str(control_port), "--lld", "iscsi", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        raise TargetError("tgtadm is not installed (Debian package 'tgt')") from None
    except subprocess.TimeoutExpired:
        raise TargetError(f"{what}: tgtadm did not answer within {timeout:.0f} s") from None
    if done.returncode == 0:
        return done.stdout
    message = done.stderr.strip().removeprefix("tgtadm: ") or f"exit status {done.returncode}"
    if done.returncode == 107 or "tgt daemon" in message:
        raise TargetUnreachable(f"no tgtd answers on control port {control_port}")
    raise TargetError(f"{what}: {message}")


def start_tgtd(control_port: int, portal: tuple[IPv4Address, int], *,
               timeout: float = 10.0) -> int:
    """Start a tgtd that listens on ``portal`` only; return its pid once it answers."""
    address, port = portal
    argv = ["tgtd", "-C", str(control_port), "--iscsi", f"portal={address}:{port}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise TargetError("tgtd is not installed (Debian package 'tgt')") from None
    if done.returncode != 0:
        raise TargetError(f"tgtd -C {control_port} failed to start: "
                          f"{done.stderr.strip() or done.returncode}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = tgtd_pid(control_port)
        if pid is not None:
            try:
                portals = tgtadm(control_port, "--mode", "portal", "--op", "show",
                                 what="list portals")
            except TargetUnreachable:
                pid = None
            else:
                if f"{address}:{port}" not in portals:
                    stop_tgtd(control_port)
                    raise TargetError(f"tgtd could not listen on {address}:{port} (address "
                                      "not on this host, or port in use?)")
                log.info("started tgtd (pid %d) on portal %s:%d, control port %d",
                         pid, address, port, control_port)
                return pid
        time.sleep(0.05)
    raise TargetError(f"tgtd on control port {control_port} did not come up in {timeout:.0f} s")


def stop_tgtd(control_port: int, *, timeout: float = 10.0) -> None:
    """Stop tgtd the way it listens to: targets deleted (forced), then the system.

    tgtd ignores SIGTERM; SIGKILL is the last resort when it does not exit in time.
    """
    pid = tgtd_pid(control_port)
    if pid is None:
        return
    try:
        listing = tgtadm(control_port, "--mode", "target", "--op", "show", what="list targets")
        for target in parse_targets(listing):
            tgtadm(control_port, "--mode", "target", "--op", "delete", "--force",
                   "--tid", str(target.tid), what=f"delete target {target.state.iqn}")
        tgtadm(control_port, "--mode", "system", "--op", "delete", "--force",
               what="stop tgtd")
    except TargetUnreachable:
        pass
    deadline = time.monotonic() + timeout
    while tgtd_pid(control_port) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    if tgtd_pid(control_port) == pid:
        log.warning("tgtd (pid %d) did not stop in %.0f s; killing it", pid, timeout)
        os.kill(pid, signal.SIGKILL)
        while tgtd_pid(control_port) == pid:
            time.sleep(0.05)
    for path in (socket_path(control_port), lock_path(control_port)):
        path.unlink(missing_ok=True)
    log.info("stopped tgtd (pid %d) on control port %d", pid, control_port)
