"""Boot stages seen by the file servers, written to the inventory off their hot paths.

A stage write is an fsync'd SQLite transaction (on PostgreSQL a round trip)
that may wait for another writer; the TFTP loop serves every client from one
thread and must not wait for it. So the servers queue stages here and one
thread writes them: everything queued within :data:`BATCH_PAUSE` of the first
waiting stage goes in one transaction, so a boot's script, kernel and initrds
(and a storm's many boots) cost one commit, not one each, and a stage is in
the inventory well within a second of being seen.
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

BATCH_PAUSE = 0.05  # seconds the writer waits after a first stage for the ones that follow

Reached = tuple[str, Stage, float]  # MAC, stage, when


class StageRecorder:
    """A :class:`~netboot.serve.service.Service` whose thread writes queued stages."""

    name = "stages"

    def __init__(self, inventories: InventoryPool, pause: float = BATCH_PAUSE) -> None:
        self._inventories = inventories
        self._pause = pause
        self._queue: queue.Queue[Reached | None] = queue.Queue()
        self._stopping = threading.Event()  # no more pause before a write
        self._thread: threading.Thread | None = None

    def record(self, mac: str, stage: Stage, detail: str | None = None) -> None:
        """Queue ``stage`` for ``mac`` at the current time; log it now."""
        at = time.time()
        level = logging.WARNING if stage is Stage.FAILED else logging.INFO
        client_log(log, mac, stage=stage.value).log(
            level, "stage %s%s", stage.value, f": {detail}" if detail else "")
        self._queue.put((mac, stage, at))

    def start(self) -> None:
        self._stopping.clear()
        self._thread = start_thread(self.name, "stages", self._run)

    def stop(self) -> None:
        """Write what is queued, at once, then end the thread."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def flush(self) -> None:
        """Wait until every queued stage is written (tests and shutdown)."""
        self._queue.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            self._stopping.wait(self._pause)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            reached = [item for item in batch if item is not None]
            try:
                if reached:
                    with self._inventories.borrow() as inventory:
                        inventory.record_stages(reached, repeat_after=0)
            except Exception:  # one failed write must not stop the recording of the others
                log.exception("could not record the boot stages of %d client(s)",
                              len({mac for mac, _, _ in reached}))
            finally:
                for _ in batch:
                    self._queue.task_done()
