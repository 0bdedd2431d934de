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

from netboot.config import ChapRotation, Config
from netboot.errors import NetbootError
from netboot.inventory.luns import extra_luns
from netboot.inventory.servers import preparers
from netboot.inventory.store import Inventory, InventoryFactory
from netboot.inventory.windows import BootWindow
from netboot.log import client_log
from netboot.provisioning.chap import new_secret_pair
from netboot.target import TargetBackend, managed_backend
from netboot.target.reconcile import target_spec
from netboot.threads import start_thread

log = logging.getLogger(__name__)

POLL = 0.02  # seconds between looks for new windows (a look costs one PRAGMA when idle)


def prepare_window(config: Config, inventory: Inventory, backend: TargetBackend,
                   window: BootWindow) -> None:
    """Steps 1 and 2 of the module docstring for ``window``'s client."""
    logger = client_log(log, window.mac)
    client = inventory.find(window.mac)
    if client is None:
        return  # removed meanwhile: its window went with it
    if config.target.rotate_chap is ChapRotation.PER_BOOT:
        if inventory.rotate_window_secrets(window.boot_id, client.mac, *new_secret_pair()):
            logger.info("boot window %d: CHAP secrets renewed", window.boot_id)
        client = inventory.get(client.mac)  # renewed here or by the other server
    if not (client.provisioned and client.lun_path):
        return
    closed = backend.renew(target_spec(config, client, extra_luns(inventory, client.mac)))
    if closed:
        logger.warning(
            "boot window %d opened while %s had %d session(s) open (from %s): closed them%s",
            window.boot_id, client.target_iqn, len(closed),
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
                    for window in inventory.unready_windows(now):
                        self._prepare(inventory, window, required)
                    seen = inventory.change_mark()
                if self._stop.wait(self.poll):
                    return

    def _prepare(self, inventory: Inventory, window: BootWindow,
                 required: frozenset[str]) -> None:
        """Prepare ``window`` on this server's tgtd unless that is done, and mark it ready
        once every server in ``required`` has (the others' heartbeats move the change mark,
        so a server lost meanwhile stops being waited for)."""
        if self.me not in inventory.window_preparers(window.boot_id):
            try:
                prepare_window(self.config, inventory, self.backend, window)
            except NetbootError as err:
                client_log(log, window.mac).error(
                    "boot window %d: could not prepare it: %s", window.boot_id, err)
            except Exception:  # one failed window must not stop the next ones
                client_log(log, window.mac).exception(
                    "boot window %d: could not prepare it", window.boot_id)
        inventory.record_preparation(window.boot_id, self.me, required)
