"""The target part of ``netboot serve``: tgtd started or adopted, and kept in step.

A watch thread wakes every second and does nothing costly unless something
moved: the inventory (its change mark moves when anyone commits, on this
server or another sharing the database; the targets it asks for are then read,
and applied if they differ from those last applied in more than CHAP secrets,
which boot windows' preparation renews on the target itself: a boot storm
commits all the time and must not cost a reconcile a second), the daemon (its pid:
a restarted tgtd has forgotten every target, so all come back within a
second or two), or ``target.reconcile_interval`` has passed. A tgtd that is
gone is started again. Stopping serve leaves tgtd running: diskless clients
live on it.

Each round also asks who is logged in (one ``show`` request, of which only the
sessions are read; reconcile runs too rarely to lend its observation) and records
the ``login`` stage of a client whose initiator newly logged in to its target (see
:mod:`netboot.target.logins`); the inventory is read only when a session appeared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from netboot.config import Config
from netboot.counters import Kind, Sample
from netboot.errors import NetbootError
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory
from netboot.log import client_log
from netboot.target import DesiredState, TargetBackend, managed_backend
from netboot.target.logins import LOGIN_OR_LATER, Session, new_logins, sessions
from netboot.target.reconcile import only_secrets_differ, read_desired, reconcile
from netboot.threads import start_thread

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0


class TargetService:
    """Starts or adopts the target daemon and reconciles it with the inventory."""

    name = "target"

    def __init__(self, config: Config, open_inventory: Callable[[], Inventory],
                 backend: TargetBackend | None = None, watch: float = WATCH_INTERVAL,
                 may_start: Callable[[], bool] = lambda: True) -> None:
        """``may_start``: whether a tgtd that is gone may be started again (not once the
        floating portal was lost and this server fenced: :mod:`netboot.target.failover`)."""
        self.config = config
        self.open_inventory = open_inventory
        self.backend = backend or managed_backend(config)
        self.watch = watch
        self.may_start = may_start
        self._held_back = False  # a gone tgtd not started again: said once
        self.reconciles = 0  # how many reconciles ran (a test and `serve` logs read it)
        self.reconcile_failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sessions: frozenset[Session] = frozenset()  # seen in the previous round
        self._applied: DesiredState | None = None  # what the last reconcile applied

    def _ensure_daemon(self) -> int | None:
        """tgtd's pid, started if it is gone; None if it is gone and may not start."""
        pid = self.backend.running()
        if pid is not None:
            return pid
        if not self.may_start():
            if not self._held_back:
                log.error("tgtd stopped when the floating portal went to the peer, which "
                          "fences this server: it is not started again; restart serve to "
                          "rejoin as standby")
                self._held_back = True
            return None
        address, port = self.config.portal
        log.warning("no tgtd on control port %d: starting one on portal %s:%d",
                    self.config.target.tgt_control_port, address, port)
        self.backend.start(self.config.portal)
        pid = self.backend.running()
        if pid is None:
            raise NetbootError("tgtd started but does not hold its control port")
        return pid

    def _reconcile(self, inventory: Inventory, desired: DesiredState | None = None) -> None:
        self.reconciles += 1
        desired = desired or read_desired(self.config, inventory)
        try:
            outcome = reconcile(self.config, inventory, self.backend, desired)
        except Exception:
            self.reconcile_failures += 1
            raise
        self._applied = None if outcome.failed else desired  # a failed one is tried again
        if outcome.failed:
            self.reconcile_failures += 1

    def _changed(self, inventory: Inventory) -> DesiredState | None:
        """The targets the inventory asks for, if they differ from those last applied in
        more than CHAP secrets (renewed by the boot windows' preparation itself: in a boot
        storm, every second); None if not."""
        desired = read_desired(self.config, inventory)
        if self._applied is not None and only_secrets_differ(desired, self._applied):
            return None
        return desired

    def samples(self) -> list[Sample]:
        """The counts as the admin interface's metrics (netboot.counters)."""
        return [
            Sample("reconciles", Kind.COUNTER, "Target reconciles run", self.reconciles),
            Sample("reconcile_failures", Kind.COUNTER,
                   "Target reconciles that failed or left a target out of step",
                   self.reconcile_failures),
            Sample("target_sessions", Kind.GAUGE, "iSCSI sessions on the target",
                   len(self._sessions)),
        ]

    def _watch_logins(self, inventory: Inventory) -> None:
        """Record ``login`` for clients whose session appeared since the previous round."""
        logins = self.backend.logins()
        now = sessions(logins)
        if now - self._sessions:
            at = time.time()
            for client, login in new_logins(self._sessions, logins, inventory.clients()):
                if not inventory.record_stage(client.mac, Stage.LOGIN, at,
                                              unless=LOGIN_OR_LATER):
                    continue  # /init reported login or later between the read and this write
                client_log(log, client.mac, stage=Stage.LOGIN.value).info(
                    "stage login: %s logged in to %s from %s", login.initiator,
                    client.target_iqn, login.address or "an unknown address")
        self._sessions = now

    def start(self) -> None:
        pid = self.backend.running()
        if pid is not None:
            log.info("using the running tgtd (pid %d) on control port %d", pid,
                     self.config.target.tgt_control_port)
        pid = self._ensure_daemon()
        if pid is None:
            raise NetbootError("tgtd may not start: this server was fenced when it lost the "
                               "floating portal")
        with self.open_inventory() as inventory:
            self._reconcile(inventory)
        self._stop.clear()
        self._sessions = frozenset()
        self._thread = start_thread(self.name, "target-watch", lambda: self._run(pid))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, pid: int | None) -> None:
        inventory = self.open_inventory()
        try:
            version = inventory.change_mark()
            last = time.monotonic()
            while not self._stop.wait(self.watch):
                try:
                    now_pid = self._ensure_daemon()
                    if now_pid is None:
                        continue  # fenced: nothing to keep in step until serve restarts
                    now_version = inventory.change_mark()
                    due = time.monotonic() - last >= self.config.target.reconcile_interval
                    if now_pid != pid:
                        log.warning("tgtd was restarted (pid %s -> %d): restoring every target",
                                    pid, now_pid)
                    if now_pid != pid or due:
                        self._reconcile(inventory)
                        pid, version, last = now_pid, now_version, time.monotonic()
                    elif now_version != version:
                        if (desired := self._changed(inventory)) is not None:
                            self._reconcile(inventory, desired)
                            last = time.monotonic()
                        version = now_version
                    self._watch_logins(inventory)
                except NetbootError as err:
                    log.error("target watch: %s", err)
                except Exception:  # the watch must outlive any one bad round
                    log.exception("target watch round crashed")
        finally:
            inventory.close()
