"""Long-running helper processes inside the lab namespace (dnsmasq, http.server, tgtd, serve).

Each gets its own log file in the lab's log directory, so a failed boot
can be explained afterwards, and is stopped by its own pid.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from netboot.lab.topology import LabError

STOP_GRACE = 5.0


class Namespace(Protocol):
    """Where a process is started: a lab's boot VLAN, a Ceph cluster's storage network."""

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside the namespace."""


@dataclass
class LabProcess:
    """A process started by the lab; ``log`` holds its stdout and stderr."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_running(self) -> None:
        """Raise with the tail of its log if it has exited."""
        if self.proc.poll() is not None:
            raise LabError(f"{self.name} exited with status {self.proc.returncode}: "
                           f"{tail(self.log)} (log: {self.log})")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log, joined for an error message."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def start(where: Namespace, name: str, argv: Sequence[str], log_dir: Path,
          settle: float = 0.3) -> LabProcess:
    """Start ``argv`` inside ``where``'s namespace; fail at once if it dies within ``settle`` s."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(where.argv(argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
        except FileNotFoundError as err:
            raise LabError(f"cannot start {name}: {err.filename} not found") from None
    started = LabProcess(name, proc, log)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    started.check_running()
    return started


def wait_for_log(process: LabProcess, needle: str, timeout: float = 10.0) -> str:
    """The first log line containing ``needle`` (how a server says it is listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in process.log.read_text(errors="replace").splitlines():
            if needle in line:
                return line
        process.check_running()
        time.sleep(0.05)
    raise LabError(f"{process.name} did not report {needle!r} within {timeout:.0f} s: "
                   f"{tail(process.log)} (log: {process.log})")
