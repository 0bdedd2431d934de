"""End to end on Ceph: a lab with ``storage ceph`` on the session's cluster, its clients
booting through tgtd's bs_rbd: lab-01 from its RBD clone of the built-in image, lab-02 an
overlay client of it (its lower layer the version's snapshot, read-only; its upper an RBD
image of its own).

The lab's default LUN (1G) is bigger than the 32M built-in image; ``client add``
resizes the clone, and netboot's /init grows the ext4 root online at first boot.
One boot of both for the module; the tests read their consoles and the CLI's view.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netboot.inventory.luns import LOWER_LUN
from netboot.lab import ceph, lab
from netboot.lab.vm import Accel, Firmware
from netboot.storage.rbdstore import IMAGE_PREFIX, ROOT_PREFIX
from tests.support.paths import make_reachable


@pytest.fixture(scope="module")
def ceph_lab(tmp_path_factory: pytest.TempPathFactory, accel: Accel, lab_cache: Path,
             ceph_cluster: ceph.Cluster) -> Iterator[lab.LabState]:
    """`netboot lab up --storage ceph` with two clients, on the session's cluster; lab-02
    is made again as an overlay client of the built-in image."""
    lab_dir = tmp_path_factory.mktemp("ceph-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    try:
        state = lab.up(lab_dir, 2, accel=accel, cache_dir=lab_cache, say=lambda _: None,
                       storage=lab.LabStorage.CEPH, ceph_dir=ceph_cluster.directory)
        overlay = state.clients[1]
        lab.run_cli(state, "client", "remove", overlay.mac, "--purge")
        lab.run_cli(state, "client", "add", overlay.mac, "--hostname", overlay.name,
                    "--image", lab.IMAGE, "--boot-method", "overlay")
        yield state
    finally:
        lab.down(lab_dir)


@pytest.fixture(scope="module")
def consoles(ceph_lab: lab.LabState) -> dict[str, str]:
    """Each client's console from their one BIOS boot, at once (each powers off once its
    root ran)."""
    progress, _ = lab.boot(ceph_lab.lab_dir, 2, Firmware.BIOS, lab.BOOT_TIMEOUT,
                           stream=io.StringIO())
    assert [p.result for p in progress] == ["ok", "ok"], progress
    return {c.name: (ceph_lab.lab_dir / "vms" / f"{c.name}.serial.log").read_text(
        errors="replace") for c in ceph_lab.clients}


@pytest.fixture(scope="module")
def console(consoles: dict[str, str]) -> str:
    """lab-01's console: the full clone's."""
    return consoles["lab-01"]


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
    rows = {r["hostname"]: r for r in _cli_json(ceph_lab, "status")["clients"]}
    assert rows[client.name]["root"] == f"rbd:{root}"
    shown = _cli_json(ceph_lab, "client", "show", client.mac)
    assert shown["root"] == {"store": "rbd", "name": root}


def test_an_overlay_client_boots_on_rbd_to_the_builtin_images_marker(consoles):
    console = consoles["lab-02"]
    assert "overlay mounted" in console and "NETBOOT-ROOT-OK lab-02" in console


def test_the_overlay_clients_layers_are_the_versions_snapshot_and_its_own_rbd_image(
        ceph_lab, ceph_cluster, consoles):
    client = ceph_lab.clients[1]
    luns = {row["lun"]: row["path"] for row in _cli_json(ceph_lab, "lun", "list", client.mac)}
    assert luns == {1: f"rbd:{ceph_cluster.pool}/{ROOT_PREFIX}{client.name}",
                    LOWER_LUN: f"rbd:{ceph_cluster.pool}/{IMAGE_PREFIX}{lab.IMAGE}@v1"}
