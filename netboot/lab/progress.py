"""Live boot progress, one line per client, and the time-to-root table at the end.

Times are seconds since that client's VM started. Stages come from its
serial console (:mod:`netboot.lab.markers`) and from the server's inventory
(stages recorded by DHCP, HTTP/TFTP and /init's reports); the first sighting
of a stage counts. On a terminal the lines are redrawn in place; otherwise
each change is printed once, so logs and CI output stay readable.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from netboot.inventory.stages import ORDER, Stage
from netboot.output import table

# The summary's columns: (heading, stage).
SUMMARY: tuple[tuple[str, Stage], ...] = (
    ("dhcp ack", Stage.DHCP),
    ("kernel", Stage.KERNEL),
    ("iscsi login", Stage.LOGIN),
    ("root", Stage.ROOT),
)


@dataclass
class ClientProgress:
    """One client's boot so far."""

    name: str
    mac: str
    times: dict[Stage, float] = field(default_factory=dict)
    failure: str | None = None
    ended: str | None = None  # why watching stopped early (QEMU exited, timeout)

    def observe(self, stage: Stage, at: float, detail: str = "") -> bool:
        """Note ``stage`` reached at ``at`` s; True if that is news."""
        if stage is Stage.FAILED:
            if self.failure is not None:
                return False
            self.failure = detail or "failed"
        elif stage in self.times:
            return False
        self.times[stage] = at
        return True

    @property
    def stage(self) -> Stage | None:
        """The furthest stage reached (``failed`` once it failed)."""
        if self.failure is not None:
            return Stage.FAILED
        reached = [s for s in ORDER if s in self.times]
        return reached[-1] if reached else None

    @property
    def done(self) -> bool:
        return Stage.ROOT in self.times or self.failure is not None or self.ended is not None

    @property
    def result(self) -> str:
        if Stage.ROOT in self.times:
            return "ok"
        if self.failure is not None:
            return f"failed: {self.failure}"
        return self.ended or "booting"


def status_line(client: ClientProgress, elapsed: float) -> str:
    """``node-01  52:54:00:00:00:01  kernel       12.3 s`` (elapsed since its VM started)."""
    stage = client.stage.value if client.stage is not None else "starting"
    shown = client.times.get(Stage.ROOT, elapsed)
    tail = f"  {client.result}" if client.done else ""
    return f"{client.name:<12} {client.mac}  {stage:<10} {shown:6.1f} s{tail}"


class Board:
    """Shows every client's progress on ``stream``; call :meth:`refresh` a few times a second."""

    def __init__(self, clients: Sequence[ClientProgress], stream: TextIO = sys.stdout,
                 live: bool | None = None) -> None:
        self.clients = {c.name: c for c in clients}
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._drawn = 0

    def observe(self, name: str, stage: Stage, at: float, detail: str = "") -> None:
        client = self.clients[name]
        if client.observe(stage, at, detail) and not self.live:
            suffix = f" ({detail})" if detail else ""
            self.stream.write(f"{client.name} {client.mac} +{at:.1f} s {stage}{suffix}\n")
            self.stream.flush()

    def end(self, name: str, why: str, at: float) -> None:
        """Stop expecting more from ``name`` (its QEMU exited or time ran out)."""
        client = self.clients[name]
        if not client.done:
            client.ended = why
            if not self.live:
                self.stream.write(f"{client.name} {client.mac} +{at:.1f} s {why}\n")
                self.stream.flush()

    def refresh(self, elapsed: dict[str, float]) -> None:
        """Redraw the live lines (a no-op when not on a terminal)."""
        if not self.live:
            return
        lines = [status_line(c, elapsed.get(c.name, 0.0)) for c in self.clients.values()]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)


def summary_rows(clients: Sequence[ClientProgress]) -> list[list[object]]:
    return [[c.name, c.mac,
             *(f"{c.times[s]:.1f}" if s in c.times else None for _, s in SUMMARY),
             c.result] for c in clients]


def summary_table(clients: Sequence[ClientProgress]) -> str:
    """Seconds from VM start to each milestone, per client."""
    headers = ["client", "mac", *(h for h, _ in SUMMARY), "result"]
    return table(headers, summary_rows(clients))


def summary_json(clients: Sequence[ClientProgress]) -> list[dict[str, object]]:
    return [{"client": c.name, "mac": c.mac, "result": c.result,
             "seconds": {s.value: round(t, 3) for s, t in c.times.items()}} for c in clients]
