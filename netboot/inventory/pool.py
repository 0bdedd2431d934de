"""A few Inventory connections shared by a server's threads, one borrower at a time.

An :class:`~netboot.inventory.Inventory` must not be used by two threads at
once, and opening one per HTTP request costs a migration check and an fsync'd
PRAGMA. The pool hands out an idle one or opens another.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from netboot.inventory.store import Inventory


class InventoryPool:
    """Also a :class:`~netboot.serve.service.Service`: started first, it closes them last."""

    name = "inventory"

    def __init__(self, open_inventory: Callable[[], Inventory]) -> None:
        self._open = open_inventory
        self._idle: queue.LifoQueue[Inventory] = queue.LifoQueue()

    @contextmanager
    def borrow(self) -> Iterator[Inventory]:
        try:
            inventory = self._idle.get_nowait()
        except queue.Empty:
            inventory = self._open()
        try:
            yield inventory
        finally:
            self._idle.put(inventory)

    def start(self) -> None:
        """Connections open on first use."""

    def stop(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
