"""What `netboot doctor` checks a server for, against the machine and the package lists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from netboot.boot.loaders import BOOT_FILES
from netboot.serve import requirements as needs
from netboot.serve.requirements import Kind, Requirement, locate, requirements
from tests.conftest import BASE_CONFIG
from tests.support import REPO

RBD_STORAGE = """\
  backend: rbd
  rbd:
    pool: netboot
    ceph_conf: /etc/ceph/ceph.conf
    client_id: netboot
"""
FAILOVER_TARGET = """\
target:
  portal_address: 198.18.0.100
  failover:
    enabled: true
    virtual_router_id: 40
    peer_storage_address: 198.19.254.3
"""
# Packages in debian-packages.txt that install netboot itself rather than serve with it.
SETUP_TOOLS = {"python3", "python3-venv", "python3-pip", "make", "adduser"}


def listed(name: str) -> set[str]:
    lines = (REPO / name).read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_a_file_store_without_failover_needs_the_base_only(make_config):
    assert requirements(make_config()) == needs.BASE


def test_an_rbd_store_needs_tgt_rbd_and_cephs_bindings(make_config):
    assert requirements(make_config(base=BASE_CONFIG + RBD_STORAGE)) == needs.BASE + needs.RBD


def test_failover_needs_keepalived(make_config):
    config = make_config(FAILOVER_TARGET, base=BASE_CONFIG + RBD_STORAGE)
    assert requirements(config) == needs.BASE + needs.RBD + needs.FAILOVER


def test_a_program_a_file_and_a_module_are_found_where_they_are():
    assert locate(Requirement("coreutils", Kind.PROGRAM, "ls", "")) is not None
    assert locate(Requirement("base-files", Kind.FILE, "/etc/debian_version", "")) == \
        "/etc/debian_version"
    assert locate(Requirement("python3", Kind.MODULE, "json", "")) is not None


def test_what_is_not_there_is_not_found():
    assert locate(Requirement("x", Kind.PROGRAM, "no-such-program-netboot", "")) is None
    assert locate(Requirement("x", Kind.FILE, "/no/such/file", "")) is None
    assert locate(Requirement("x", Kind.MODULE, "no_such_module_netboot", "")) is None


def test_the_runtime_list_is_what_doctor_checks_plus_the_boot_loaders_and_setup_tools():
    # another architecture's loaders are fetched (apt-get download PKG:arm64), not installed
    checked = {r.package for r in needs.EVERY} | {f.package for f in BOOT_FILES if not f.foreign}
    assert listed("debian-packages.txt") == checked | SETUP_TOOLS


def test_the_two_lists_share_no_package():
    assert listed("debian-packages.txt") & listed("debian-packages-test.txt") == set()


def test_doctor_names_the_package_of_a_missing_program_and_exits_1(make_config, tmp_path: Path):
    config = make_config()
    bin_dir = tmp_path / "bin"  # a PATH with python but without tgtd
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    done = subprocess.run([sys.executable, "-m", "netboot", "--config", str(config.source),
                           "doctor"], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 1
    row = next(line for line in done.stdout.splitlines() if line.startswith("tgt "))
    assert "MISSING" in row and "apt-get install tgt" in row
    summary = done.stderr.split("missing Debian packages: ", 1)[1]
    assert "tgt" in summary.split(" (", 1)[0].split()
