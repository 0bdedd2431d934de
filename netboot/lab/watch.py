"""Follow several booting VMs at once: console markers and server-side stages onto one board."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress

from netboot.inventory.stages import Stage
from netboot.lab.markers import classify
from netboot.lab.progress import Board
from netboot.lab.vm import STOP_GRACE, SerialLine, Vm, VmTimeout

TICK = 0.2  # seconds between board redraws and stage polls

# Stages the server saw: (mac, stage name, Unix time), e.g. from the inventory.
StagePoll = Callable[[], Iterable[tuple[str, Stage, float]]]


def _pump(vm: Vm, timeout: float, out: queue.Queue[tuple[str, SerialLine | None]]) -> None:
    try:
        for line in vm.lines(timeout):
            out.put((vm.spec.name, line))
    except VmTimeout:
        pass
    out.put((vm.spec.name, None))


def watch(vms: Sequence[Vm], board: Board, timeout: float,
          poll: StagePoll | None = None) -> None:
    """Update ``board`` until every VM reached its root, failed, exited or ``timeout`` s passed.

    The VMs are left running: one that reached its root may still be
    writing to it; the caller stops them.
    """
    events: queue.Queue[tuple[str, SerialLine | None]] = queue.Queue()
    by_mac = {vm.spec.mac: vm for vm in vms}
    for vm in vms:
        threading.Thread(target=_pump, args=(vm, timeout, events), daemon=True,
                         name=f"watch-{vm.spec.name}").start()
    deadline = time.monotonic() + timeout
    clients = board.clients
    while not all(c.done for c in clients.values()) and time.monotonic() < deadline:
        try:
            name, line = events.get(timeout=TICK)
        except queue.Empty:
            name, line = "", None
        vm = next((v for v in vms if v.spec.name == name), None)
        if vm is not None and line is None:
            with suppress(VmTimeout):  # a console closed by the timeout, not by QEMU's exit
                status = vm.wait_exit(STOP_GRACE)
                board.end(name, f"QEMU exited (status {status})", time.monotonic() - vm.started)
        elif line is not None and (marker := classify(line.text)) is not None:
            board.observe(name, marker.stage, line.at, marker.detail)
        for mac, stage, at in (poll() if poll is not None else ()):
            owner = by_mac.get(mac)
            # A stage from before this VM started belongs to an earlier boot.
            if owner is not None and at >= owner.started_wall:
                board.observe(owner.spec.name, stage, at - owner.started_wall)
        board.refresh({v.spec.name: time.monotonic() - v.started for v in vms})
    for vm in vms:
        board.end(vm.spec.name, f"timed out after {timeout:.0f} s",
                  time.monotonic() - vm.started)
