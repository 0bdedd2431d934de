"""Boot stages seen by the file servers, written to the inventory off their hot paths.

A stage write is an fsync'd SQLite transaction that may wait for another
writer; the TFTP loop serves every client from one thread and must not wait
for it. So the servers queue stages here and one thread writes them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from netboot.inventory.pool import InventoryPool
from netboot.inventory.stages import Stage
from netboot.log import client_log
from netboot.threads import start_thread

log = logging.getLogger(__name__)


class StageRecorder:
    """A :class:`~netboot.serve.service.Service` whose thread writes queued stages."""

    name = "stages"

    def __init__(self, inventories: InventoryPool) -> None:
        self._inventories = inventories
        self._queue: queue.Queue[tuple[str, Stage, float] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def record(self, mac: str, stage: Stage, detail: str | None = None) -> None:
        """Queue ``stage`` for ``mac`` at the current time; log it now."""
        at = time.time()
        level = logging.WARNING if stage is Stage.FAILED else logging.INFO
        client_log(log, mac, stage=stage.value).log(
            level, "stage %s%s", stage.value, f": {detail}" if detail else "")
        self._queue.put((mac, stage, at))

    def start(self) -> None:
        self._thread = start_thread(self.name, "stages", self._run)

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def flush(self) -> None:
        """Wait until every queued stage is written (tests and shutdown)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                mac, stage, at = item
                with self._inventories.borrow() as inventory:
                    inventory.record_stage(mac, stage, at)
            except Exception:  # one failed write must not stop the recording of the others
                log.exception("could not record a boot stage")
            finally:
                self._queue.task_done()
