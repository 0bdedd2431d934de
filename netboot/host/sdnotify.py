"""systemd's service notifications (sd_notify(3)): ``READY=1``, ``WATCHDOG=1``,
``STOPPING=1`` and ``STATUS=`` sent to the datagram socket systemd names in
``$NOTIFY_SOCKET``.

Each message is one datagram of ``KEY=VALUE`` lines; systemd documents the protocol as
stable for other implementations (sd_notify(3), "Notes"), so netboot speaks it itself
rather than depend on libsystemd's Python binding. Outside systemd (no
``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

SOCKET_VARIABLE = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"  # the unit's WatchdogSec=, in microseconds
WATCHDOG_PID = "WATCHDOG_PID"  # the process the watchdog is for, when systemd says
READY = "READY=1"
STOPPING = "STOPPING=1"
WATCHDOG = "WATCHDOG=1"
STATUS = "STATUS="


@dataclass(frozen=True)
class Notifier:
    """Where to tell systemd about this service, and how often to ping its watchdog."""

    address: str | None = None  # $NOTIFY_SOCKET: a path, or "@name" for an abstract one
    watchdog_interval: float | None = None  # seconds: half of WatchdogSec=, as systemd advises

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd asked for, taking its variables out of ``environ`` so that
        child processes (tgtd, keepalived, the network part) do not notify in our name."""
        address = environ.pop(SOCKET_VARIABLE, None) or None
        usec = environ.pop(WATCHDOG_USEC, "")
        pid = environ.pop(WATCHDOG_PID, "")
        interval = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 2e6
        return cls(address, interval)

    def send(self, *fields: str) -> None:
        """One message; a failure is logged, never raised: serving matters more."""
        if self.address is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(fields).encode(), target)
        except OSError as err:
            log.warning("could not notify systemd at %s: %s", self.address, err)

    def ready(self, status: str) -> None:
        self.send(READY, STATUS + status)

    def stopping(self, status: str) -> None:
        self.send(STOPPING, STATUS + status)

    def ping(self) -> None:
        self.send(WATCHDOG)
