"""Getting each new boot window ready: the client's sessions closed and its CHAP renewed.

A boot window (:mod:`netboot.inventory.windows`) is opened by the DHCP loop,
which must not wait for the target; this service does the rest, in order,
while the file servers hold the window's files back (they wait for ``ready``):

1. with ``target.rotate_chap: per-boot``, new CHAP and mutual-CHAP secrets in
   the inventory, so every file the window serves carries them and a secret
   stolen earlier is dead from this boot on;
2. the client's target brought in step (an account whose secret changed is
   made again) and every session on it closed. A machine that is booting has
   no session of its own, so one that is open is a running system's (the same
   MAC booting again: a hard reset, or someone taking its place) or a thief's:
   it is logged as a warning;
3. the window marked ready, once every server with a tgtd clients may log in to
   (:func:`netboot.inventory.servers.preparers`: with a floating portal, the holder
   and the standby) has done step 2 on its own tgtd. Step 1 is done once per window,
   by the first of them.

Windows that a stopped ``serve`` left unprepared are prepared when it starts.
A failure is logged and the window still marked ready: the target watch
brings the target in step within seconds, and a boot waiting on a window that
never becomes ready would fail anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from netboot.config import ChapRotation, Config
from netboot.errors import NetbootError
from netboot.inventory.clients import Client
from netboot.inventory.servers import preparers
from netboot.inventory.store import Inventory, InventoryFactory
from netboot.inventory.windows import BootWindow
from netboot.log import client_log
from netboot.provisioning.chap import new_secret_pair
from netboot.target import TargetBackend, managed_backend
from netboot.target.reconcile import client_specs
from netboot.threads import start_thread

log = logging.getLogger(__name__)

POLL = 0.02  # seconds between looks for new windows (a look costs one PRAGMA when idle)


def prepare_windows(config: Config, inventory: Inventory, backend: TargetBackend,
                    windows: Sequence[BootWindow]) -> None:
    """Steps 1 and 2 of the module docstring for every window of ``windows``, their targets
    renewed together (one observation of tgtd for a storm's many boots); a target that
    failed is logged with its client's MAC."""
    prepared: list[tuple[BootWindow, Client]] = []
    for window in windows:
        client = inventory.find(window.mac)
        if client is None:
            continue  # removed meanwhile: its window went with it
        if config.target.rotate_chap is ChapRotation.PER_BOOT:
            if inventory.rotate_window_secrets(window.boot_id, client.mac, *new_secret_pair()):
                client_log(log, window.mac).info("boot window %d: CHAP secrets renewed",
                                                 window.boot_id)
            client = inventory.get(client.mac)  # renewed here or by the other server
        if client.provisioned and client.lun_path:
            prepared.append((window, client))
    if not prepared:
        return
    specs = client_specs(config, inventory, [client for _, client in prepared])
    renewal = backend.renew(specs)
    for (window, _), spec in zip(prepared, specs, strict=True):
        logger = client_log(log, window.mac)
        if spec.iqn in renewal.failed:
            logger.error("boot window %d: could not prepare it: %s", window.boot_id,
                         renewal.failed[spec.iqn])
        if closed := renewal.closed.get(spec.iqn):
            logger.warning(
                "boot window %d opened while %s had %d session(s) open (from %s): closed "
                "them%s", window.boot_id, spec.iqn, len(closed),
                ", ".join(login.address or "an unknown address" for login in closed),
                "; the secrets they used are no longer valid"
                if config.target.rotate_chap is ChapRotation.PER_BOOT else "")


class WindowPreparer:
    """A :class:`~netboot.serve.service.Service`: prepares windows in the order they opened.

    It looks for unready windows in the inventory whenever anyone committed there (a
    cheap check every :data:`POLL` seconds), so the DHCP loop that opens them may run
    in another process, as another user (:mod:`netboot.serve.network`).
    """

    name = "windows"

    def __init__(self, config: Config, open_inventory: InventoryFactory,
                 backend: TargetBackend | None = None, poll: float = POLL) -> None:
        self.config = config
        self.open_inventory = open_inventory
        self.backend = backend or managed_backend(config)
        self.poll = poll
        self.me = config.server_name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = start_thread(self.name, "window-prepare", self._run)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        with self.open_inventory() as inventory:
            seen = None
            while True:
                mark = inventory.change_mark()
                if mark != seen:
                    now = time.time()
                    required = preparers(inventory.servers(), self.me, now)
                    self._prepare(inventory, inventory.unready_windows(now), required)
                    seen = inventory.change_mark()
                if self._stop.wait(self.poll):
                    return

    def _prepare(self, inventory: Inventory, windows: Sequence[BootWindow],
                 required: frozenset[str]) -> None:
        """Prepare on this server's tgtd those of ``windows`` it has not prepared, all at
        once, and mark each ready once every server in ``required`` has (the others'
        heartbeats move the change mark, so a server lost meanwhile stops being waited
        for). A failure is logged for each window and they are marked ready all the same."""
        mine = [w for w in windows if self.me not in inventory.window_preparers(w.boot_id)]
        if mine:
            try:
                prepare_windows(self.config, inventory, self.backend, mine)
            except NetbootError as err:
                for window in mine:
                    client_log(log, window.mac).error(
                        "boot window %d: could not prepare it: %s", window.boot_id, err)
            except Exception:  # a failed batch must not stop the next ones
                log.exception("could not prepare the boot windows of %s",
                              ", ".join(w.mac for w in mine))
        for window in windows:
            inventory.record_preparation(window.boot_id, self.me, required)
