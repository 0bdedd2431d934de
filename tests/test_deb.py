"""netboot's Debian package (`make deb`), installed by apt into a fresh Debian 12 root that
mmdebstrap makes from this machine's mirror: its CLI runs and checks the shipped config, the
config is a conffile, the unit is there but not enabled, postinst made the user, and the
Depends bring everything `netboot doctor` checks.

Marked ``mirror``: the root downloads about 50 MB (the apt variant, then the package's
dependencies). The .deb and the root are made once for this module (35-60 s together here);
the root is removed after it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from netboot.storage.osimage import read_mirror
from tests.conftest import needs_root
from tests.support import REPO

pytestmark = [needs_root, pytest.mark.mirror]

SUITE = "bookworm"
CONFIG = "/etc/netboot/netboot.yaml"
UNIT = "lib/systemd/system/netboot.service"


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    done = subprocess.run([REPO / "scripts" / "build-deb.sh", out], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    deb, = out.glob("netboot_*_all.deb")
    return deb


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    """A Debian 12 root (variant apt) with the .deb installed by apt inside it, while
    mmdebstrap has /proc mounted and services kept from starting; no mount outlives it."""
    root = tmp_path_factory.mktemp("debroot") / "root"
    inside = f"/tmp/{deb.name}"
    argv = ["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
            f"--customize-hook=copy-in {deb} /tmp",
            '--customize-hook=chroot "$1" env DEBIAN_FRONTEND=noninteractive '
            f"apt-get install -y -q --no-install-recommends {inside}",
            f'--customize-hook=rm "$1"{inside}',
            SUITE, str(root), *read_mirror().sources(SUITE)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    yield root
    shutil.rmtree(root)


def chroot(root: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True,
                          timeout=120, check=False)


def test_netboot_on_path_prints_its_version(root):
    done = chroot(root, "netboot", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "netboot, version 0.1.0\n"


def test_the_shipped_config_passes_its_check(root):
    done = chroot(root, "netboot", "config", "check")
    assert (done.returncode, done.stdout) == (0, f"{CONFIG}: OK\n"), done.stderr


def test_the_config_is_a_conffile(root):
    done = chroot(root, "dpkg-query", "-W", "-f=${Conffiles}", "netboot")
    assert [line.split()[0] for line in done.stdout.splitlines() if line] == [CONFIG]


def test_the_unit_runs_the_packaged_netboot_and_is_not_enabled(root):
    unit = (root / UNIT).read_text().splitlines()
    assert f"ExecStart=/usr/lib/netboot/bin/python -m netboot --config {CONFIG} serve" in unit
    assert not list((root / "etc/systemd/system").glob("*/netboot.service"))


def test_postinst_made_the_system_user(root):
    done = chroot(root, "getent", "passwd", "netboot")
    assert done.stdout.split(":")[5:] == ["/nonexistent", "/usr/sbin/nologin\n"]


def test_the_depends_bring_what_doctor_checks(root):
    loaders = chroot(root, "/usr/lib/netboot/bin/python", "-m", "netboot.boot.loaders",
                     "/var/lib/netboot/tftproot")
    assert loaders.returncode == 0, loaders.stderr
    done = chroot(root, "netboot", "doctor", "--json")
    report = json.loads(done.stdout)
    assert [r["name"] for r in report["packages"] if r["found"] is None] == []
    assert done.returncode == 0, report
