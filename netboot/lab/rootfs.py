"""Reading a client's root LUN on the host, without mounting it: debugfs (e2fsprogs).

A test proves a client really ran from its own LUN by what it left there
(the built-in image counts its boots in /netboot-boot-count).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from netboot.host.run import not_installed
from netboot.lab.topology import LabError


def read_file(image: Path, path: str) -> str:
    """The text of ``path`` inside the ext2/3/4 filesystem in ``image``."""
    try:
        proc = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True,
                              text=True)
    except FileNotFoundError:
        raise LabError(not_installed("debugfs")) from None
    # debugfs exits 0 even for a missing file; it says so on stderr.
    problem = [line for line in proc.stderr.splitlines() if not line.startswith("debugfs ")]
    if proc.returncode != 0 or problem:
        raise LabError(f"cannot read {path} from {image}: "
                       f"{' '.join(problem) or proc.returncode}")
    return proc.stdout


def boot_count(image: Path) -> int:
    """How often the built-in image booted from ``image`` (0 if never)."""
    try:
        return int(read_file(image, "/netboot-boot-count"))
    except LabError as err:
        if "File not found" in str(err):
            return 0
        raise
