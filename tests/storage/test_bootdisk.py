"""Sanboot images are BIOS-bootable disks: GRUB's boot sectors, and a real small disk."""

import subprocess
from pathlib import Path

import pytest

from netboot.storage.bootdisk import (
    BLOCKLIST_START,
    BOOT_CODE_SIZE,
    GRUB_DIR,
    KERNEL_SECTOR,
    PARTITION_START,
    SECTOR,
    grub_boot_sectors,
    make_boot_disk,
)
from netboot.storage.osfiles import DEFAULT_OPTIONS, OsImageError, grub_config

GOLDEN = Path(__file__).parent / "golden" / "osimage"
MBR = bytes(range(256)) * 2  # stands in for sfdisk's partition table and signature
BOOT_IMG = (GRUB_DIR / "boot.img").read_bytes()  # grub-pc-bin, in debian-packages-test.txt


def test_mbr_gets_grub_code_and_keeps_the_partition_table():
    mbr, _core = grub_boot_sectors(MBR, BOOT_IMG, bytes(3 * SECTOR))
    assert mbr[BOOT_CODE_SIZE:] == MBR[BOOT_CODE_SIZE:]
    assert mbr[:KERNEL_SECTOR] == BOOT_IMG[:KERNEL_SECTOR]


def test_mbr_loads_core_from_the_sector_after_it():
    mbr, _core = grub_boot_sectors(MBR, BOOT_IMG, bytes(3 * SECTOR))
    assert int.from_bytes(mbr[KERNEL_SECTOR:KERNEL_SECTOR + 8], "little") == 1


def test_core_blocklist_points_at_its_second_sector_and_is_padded():
    _mbr, core = grub_boot_sectors(MBR, BOOT_IMG, bytes(2 * SECTOR + 7))
    assert int.from_bytes(core[BLOCKLIST_START:BLOCKLIST_START + 8], "little") == 2
    assert len(core) == 3 * SECTOR


def test_core_too_big_for_the_gap_is_refused():
    with pytest.raises(OsImageError, match="does not fit before the partition"):
        grub_boot_sectors(MBR, BOOT_IMG, bytes(PARTITION_START * SECTOR))


def test_grub_config_matches_golden():
    assert grub_config("deb12san", DEFAULT_OPTIONS) == (GOLDEN / "grub.cfg").read_text()


@pytest.fixture
def disk(tmp_path) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/os-release").write_text("ID=debian\n")
    image = tmp_path / "disk.img"
    make_boot_disk(tree, image, 64 << 20, "deb12san", "set timeout=0\n")
    return image


def test_disk_has_one_bootable_partition_after_the_grub_gap(disk):
    table = subprocess.run(["sfdisk", "-d", str(disk)], capture_output=True, text=True,
                           check=True).stdout
    assert f"start=        {PARTITION_START}," in table and "bootable" in table


def test_partition_holds_the_tree_and_grub_cfg(disk):
    def cat(path: str) -> str:
        return subprocess.run(["debugfs", "-R", f"cat {path}",
                               f"{disk}?offset={PARTITION_START * SECTOR}"],
                              capture_output=True, text=True, check=True).stdout
    assert cat("/etc/os-release") == "ID=debian\n"
    assert cat("/boot/grub/grub.cfg") == "set timeout=0\n"


def test_disk_starts_with_grub_boot_code(disk):
    assert disk.read_bytes()[:KERNEL_SECTOR] == BOOT_IMG[:KERNEL_SECTOR]
