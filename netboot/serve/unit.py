"""netboot as a systemd service: the unit file ``netboot install-service`` writes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from netboot.errors import NetbootError
from netboot.host.files import atomic_write
from netboot.host.run import run
from netboot.templates import render

UNIT_NAME = "netboot.service"
UNIT_DIR = Path("/etc/systemd/system")  # the admin's units (systemd.unit(5)), not the package's
SYSTEMD_RUNNING = Path("/run/systemd/system")  # exists only when systemd is PID 1 (sd_booted(3))


def render_unit(config: Path, python: str = sys.executable) -> str:
    """The unit running `netboot serve` with ``config``, by this interpreter (so the unit
    runs the netboot that wrote it, in a venv or not)."""
    return render(f"{UNIT_NAME}.j2", python=python, config=config.resolve())


def install_unit(config: Path, unit_dir: Path = UNIT_DIR) -> Path:
    """Write the unit into ``unit_dir`` (atomically, 0644) and, when systemd runs, reload
    it; returns the unit's path."""
    if not unit_dir.is_dir():
        raise NetbootError(f"{unit_dir} is not a directory: give --unit-dir a unit directory")
    path = unit_dir / UNIT_NAME
    atomic_write(path, render_unit(config).encode(), 0o644)
    if SYSTEMD_RUNNING.is_dir() and shutil.which("systemctl"):
        run(["systemctl", "daemon-reload"], what="systemctl daemon-reload")
    return path
