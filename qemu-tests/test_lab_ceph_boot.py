"""End to end on Ceph: a lab with ``storage ceph`` on the session's cluster, its client
booting from its RBD clone of the built-in image through tgtd's bs_rbd.

The lab's default LUN (1G) is bigger than the 32M built-in image; ``client add``
resizes the clone, and netboot's /init grows the ext4 root online at first boot.
One boot for the module; the tests read its console and the CLI's view of it.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netboot.lab import ceph, lab
from netboot.lab.vm import Accel, Firmware
from netboot.storage.rbdstore import ROOT_PREFIX
from tests.support.paths import make_reachable


@pytest.fixture(scope="module")
def ceph_lab(tmp_path_factory: pytest.TempPathFactory, accel: Accel, lab_cache: Path,
             ceph_cluster: ceph.Cluster) -> Iterator[lab.LabState]:
    """`netboot lab up --storage ceph` with one client, on the session's cluster."""
    lab_dir = tmp_path_factory.mktemp("ceph-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    try:
        yield lab.up(lab_dir, 1, accel=accel, cache_dir=lab_cache, say=lambda _: None,
                     storage=lab.LabStorage.CEPH, ceph_dir=ceph_cluster.directory)
    finally:
        lab.down(lab_dir)


@pytest.fixture(scope="module")
def console(ceph_lab: lab.LabState) -> str:
    """lab-01's console from its one BIOS boot (it powers off once its root ran)."""
    progress, _ = lab.boot(ceph_lab.lab_dir, 1, Firmware.BIOS, lab.BOOT_TIMEOUT,
                           stream=io.StringIO())
    assert progress[0].result == "ok", progress[0]
    return (ceph_lab.lab_dir / "vms" / "lab-01.serial.log").read_text(errors="replace")


def _cli_json(state: lab.LabState, *args: str) -> object:
    done = subprocess.run(lab.netboot_argv(Path(state.config), *args, "--json"),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_client_boots_from_its_rbd_clone_to_the_builtin_images_marker(console):
    assert "NETBOOT-ROOT-OK lab-01" in console


def test_client_grows_its_root_filesystem_to_its_larger_clone_at_first_boot(console):
    assert ("grew the root filesystem on /dev/sda from 32 MiB to 1024 MiB (its LUN: 1024 MiB)"
            in console)


def test_status_and_client_show_say_the_root_lives_on_rbd(ceph_lab, ceph_cluster, console):
    client = ceph_lab.clients[0]
    root = f"{ceph_cluster.pool}/{ROOT_PREFIX}{client.name}"
    (row,) = _cli_json(ceph_lab, "status")["clients"]
    assert row["root"] == f"rbd:{root}"
    shown = _cli_json(ceph_lab, "client", "show", client.mac)
    assert shown["root"] == {"store": "rbd", "name": root}
