"""The floating portal as a part of ``netboot serve``: prepared, then keepalived run as a
child, before the target service starts tgtd (:mod:`netboot.serve.compose` orders them).

keepalived exiting on its own stops serve, as any dead service does. Stopping serve
stops keepalived (the peer takes the portal over within a few adverts) and carries
out the STOP transition here too, in case keepalived's own notify did not run: a
holder drops the address and stops its tgtd, whose Ceph clients the peer fences.
"""

from __future__ import annotations

import logging
import subprocess
import threading

from netboot.config import Config
from netboot.errors import NetbootError
from netboot.host.run import end_process
from netboot.target.failover.decide import VrrpState
from netboot.target.failover.portal import fenced, notify, prepare
from netboot.threads import start_thread

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # seconds keepalived has to send its last advert and exit
WATCH_INTERVAL = 1.0  # seconds between looks at whether this server was fenced


class PortalService:
    """A :class:`~netboot.serve.service.Service`: keepalived for ``target.failover``."""

    name = "portal"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        argv = prepare(self.config)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise NetbootError("keepalived is not installed (Debian package keepalived; "
                               "`make setup` installs it)") from None
        log.info("floating portal %s: keepalived running (pid %d), VRRP on %s",
                 self.config.portal[0], self.proc.pid, self.config.vrrp_interface)
        self._stopping.clear()
        self._thread = start_thread(self.name, "keepalived-watch", self._watch)

    def _watch(self) -> None:
        """keepalived's death stops serve; once this server is fenced, keepalived is
        stopped here instead (the peer must be alone in VRRP), and serve goes on."""
        proc = self.proc
        assert proc is not None
        while not self._stopping.is_set():
            try:
                status = proc.wait(WATCH_INTERVAL)
            except subprocess.TimeoutExpired:
                if fenced(self.config):
                    log.error("this server lost the floating portal and is fenced: keepalived "
                              "stopped, leaving VRRP to the peer; restart serve to rejoin as "
                              "standby")
                    self._end()
                    self._stopping.wait()
                continue
            if not self._stopping.is_set():
                raise NetbootError(f"keepalived (pid {proc.pid}) exited with status {status}")

    def _end(self) -> None:
        end_process(self.proc, STOP_TIMEOUT, "keepalived")

    def stop(self) -> None:
        self._stopping.set()
        self._end()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        done = notify(self.config, VrrpState.STOP)
        log.info("floating portal released%s",
                 f": {', '.join(done)}" if done else " (this server did not hold it)")
