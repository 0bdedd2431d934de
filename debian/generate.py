"""What debian/rules asks of netboot itself, so each thing keeps one home: the systemd unit,
by the renderer `netboot install-service` uses, and the package's Depends and Suggests, from
what `netboot doctor` checks (tests/serve/test_requirements.py ties that to
debian-packages.txt).

Run by the staged venv's interpreter: ``generate.py STAGE SUBSTVARS``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from netboot.boot.loaders import BOOT_FILES
from netboot.serve.requirements import BASE, FAILOVER, RBD
from netboot.serve.unit import UNIT_NAME, render_unit

VENV_PYTHON = "/usr/lib/netboot/bin/python"
CONFIG = Path("/etc/netboot/netboot.yaml")  # the conffile
UNIT_DIR = Path("lib/systemd/system")  # the package's units (Debian 12's debhelper)


def write_unit(stage: Path) -> None:
    """The unit running the venv's netboot with the conffile."""
    unit_dir = stage / UNIT_DIR
    unit_dir.mkdir(parents=True, exist_ok=True)
    (unit_dir / UNIT_NAME).write_text(render_unit(CONFIG, python=VENV_PYTHON))


def python_range() -> list[str]:
    """The venv's site-packages is lib/pythonX.Y: Debian's python3 must stay X.Y."""
    major, minor = sys.version_info[:2]
    return [f"python3 (>= {major}.{minor}~)", f"python3 (<< {major}.{minor + 1})"]


def substvars() -> str:
    """Depends: this Python, what every server needs (doctor's base, the boot loaders'
    packages); Suggests: what only storage.backend rbd and target.failover need."""
    packages = {r.package for r in BASE} | {f.package for f in BOOT_FILES if not f.foreign}
    suggests = {r.package for r in (*RBD, *FAILOVER)} - packages
    depends = [*python_range(), *sorted(packages)]
    return (f"netboot:Depends={', '.join(depends)}\n"
            f"netboot:Suggests={', '.join(sorted(suggests))}\n")


def main(stage: Path, substvars_file: Path) -> None:
    write_unit(stage)
    with substvars_file.open("a") as out:
        out.write(substvars())


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
