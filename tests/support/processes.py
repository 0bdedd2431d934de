"""Processes tests need in a known state."""

from __future__ import annotations

import subprocess


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
