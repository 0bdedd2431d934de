"""What each process of ``netboot serve`` has counted, carried to the one that serves
``/metrics``.

serve is several processes: the root part (target, reconcile), the network part
(DHCP, HTTP, TFTP) and TFTP's worker processes. Each service keeps its own
counters as plain integers on its hot path (a DHCP reply or a TFTP block costs no
lock and no shared-memory write for them); a :class:`CounterPublisher` in each
process writes a snapshot of them every second to ``<state_dir>/metrics/<pid>.json``
(written aside, then renamed over the last), and the admin interface sums the
snapshots when it is scraped. So a counter is at most a second old, and survives
nothing: serve empties the directory when it starts, as Prometheus expects of a
restarted target's counters.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from netboot.threads import start_thread

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 1.0  # seconds between two snapshots of one process
SNAPSHOT_SUFFIX = ".json"


class Kind(StrEnum):
    """How Prometheus reads a sample: a count that only grows, or a level."""

    COUNTER = "counter"
    GAUGE = "gauge"


@dataclass(frozen=True)
class Sample:
    """One value of one metric family (``name`` without the ``netboot_`` prefix or the
    ``_total`` suffix, which the exposition adds)."""

    name: str
    kind: Kind
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class Counted(Protocol):
    """A service whose counters are published."""

    def samples(self) -> Iterable[Sample]: ...


def counted(services: Iterable[object]) -> list[Counted]:
    """Those of ``services`` that count something."""
    return [s for s in services if callable(getattr(s, "samples", None))]  # type: ignore[misc]


def snapshot_dir(state_dir: Path) -> Path:
    """Where every process of one serve leaves its snapshot."""
    return state_dir / "metrics"


def clear_snapshots(directory: Path) -> None:
    """Start a serve's counters at zero: drop the snapshots of an earlier run."""
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    for stale in directory.glob(f"*{SNAPSHOT_SUFFIX}"):
        stale.unlink(missing_ok=True)


def encode(samples: Sequence[Sample]) -> bytes:
    return json.dumps([[s.name, s.kind.value, s.help, s.value, [list(p) for p in s.labels]]
                       for s in samples]).encode()


def decode(data: bytes) -> list[Sample]:
    return [Sample(name, Kind(kind), text, float(value), tuple((k, v) for k, v in labels))
            for name, kind, text, value, labels in json.loads(data)]


def merge(snapshots: Iterable[Sequence[Sample]]) -> list[Sample]:
    """One sample per metric and label set: counters and gauges of several processes
    (TFTP's workers, say) added up, in first-seen order."""
    total: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for samples in snapshots:
        for s in samples:
            key = (s.name, s.labels)
            seen = total.get(key)
            total[key] = s if seen is None else Sample(
                s.name, s.kind, s.help, seen.value + s.value, s.labels)
    return list(total.values())


def read_snapshots(directory: Path) -> list[Sample]:
    """Every process's last snapshot, merged; a file that cannot be read is skipped and
    logged (a process dies between listing and reading: its counters go with it)."""
    snapshots = []
    for path in sorted(directory.glob(f"*{SNAPSHOT_SUFFIX}")):
        try:
            snapshots.append(decode(path.read_bytes()))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError) as err:
            log.warning("metrics snapshot %s unreadable: %s", path, err)
    return merge(snapshots)


class CounterPublisher:
    """A :class:`~netboot.serve.service.Service` writing this process's counters (from
    ``sources``) to ``directory`` every :data:`PUBLISH_INTERVAL` and once more at stop."""

    name = "counters"

    def __init__(self, directory: Path, sources: Sequence[Counted]) -> None:
        self.directory = directory
        self.sources = sources
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.directory / f"{os.getpid()}{SNAPSHOT_SUFFIX}"

    def publish(self) -> None:
        """Write the snapshot; a failure (a full disk) is logged once, not fatal: the boot
        services matter more than their counters."""
        temp = self.path.with_suffix(".tmp")  # never read: the reader takes *.json only
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            with open(fd, "wb") as f:
                f.write(encode([s for src in self.sources for s in src.samples()]))
            os.replace(temp, self.path)  # no fsync: a snapshot lost to a crash dies with serve
        except OSError as err:
            if not self._failing:
                log.error("cannot write the metrics snapshot %s: %s", self.path, err)
            self._failing = True
        else:
            self._failing = False

    def start(self) -> None:
        self.publish()
        self._stop.clear()
        self._thread = start_thread(self.name, "counters", self._run)

    def _run(self) -> None:
        while not self._stop.wait(PUBLISH_INTERVAL):
            self.publish()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.publish()
