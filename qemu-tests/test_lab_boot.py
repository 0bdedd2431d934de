"""End to end: QEMU clients PXE-boot through the real `netboot serve` and tgtd to their own LUN.

The lab is made with the real CLI (kernel fetch, initramfs build, image
build, client add); clients run the built-in image, which prints
NETBOOT-ROOT-OK and counts its boots on its own LUN, read back with debugfs.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.inventory import Inventory
from netboot.lab import lab
from netboot.lab.markers import Stage
from netboot.lab.rootfs import boot_count
from netboot.lab.vm import Firmware


def _luns(state: lab.LabState) -> dict[str, Path]:
    config = load_config(state.config)
    with Inventory(config.storage.database) as inventory:
        return {c.mac: Path(c.lun_path) for c in inventory.clients()}


def _counts(state: lab.LabState) -> dict[str, int]:
    return {mac: boot_count(lun) for mac, lun in _luns(state).items()}


def _serial(lab_dir: Path, name: str) -> str:
    return (lab_dir / "vms" / f"{name}.serial.log").read_text()


@pytest.mark.parametrize("firmware", list(Firmware), ids=str)
def test_client_boots_to_its_own_root_and_counts_the_boot_there(shared_lab, boot_timeout,
                                                                firmware):
    lab_dir, state = shared_lab
    before = _counts(state)
    progress, _ = lab.boot(lab_dir, 1, firmware, boot_timeout, stream=io.StringIO())
    first = state.clients[0]
    assert progress[0].result == "ok"
    assert f"NETBOOT-ROOT-OK {first.name}" in _serial(lab_dir, first.name)
    assert _counts(state) == {**before, first.mac: before[first.mac] + 1}


def test_two_clients_at_once_each_reach_their_own_root(shared_lab, boot_timeout):
    lab_dir, state = shared_lab
    before = _counts(state)
    progress, _ = lab.boot(lab_dir, 2, Firmware.BIOS, boot_timeout, stream=io.StringIO())
    assert [p.result for p in progress] == ["ok", "ok"]
    assert all(Stage.LOGIN in p.times for p in progress)
    assert _counts(state) == {mac: count + 1 for mac, count in before.items()}


def test_client_booted_twice_has_counted_two_boots(shared_lab, boot_timeout):
    lab_dir, state = shared_lab
    first = state.clients[0]
    before = _counts(state)[first.mac]
    for _ in range(2):
        progress, _ = lab.boot(lab_dir, 1, Firmware.BIOS, boot_timeout, stream=io.StringIO())
        assert progress[0].result == "ok"
    assert _counts(state)[first.mac] == before + 2
