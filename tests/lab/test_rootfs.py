"""Reading files out of an ext4 image with debugfs, as tests read client LUNs."""

from __future__ import annotations

import subprocess

import pytest

from netboot.lab.rootfs import boot_count, read_file
from netboot.lab.topology import LabError


@pytest.fixture
def image(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "netboot-boot-count").write_text("2\n")
    path = tmp_path / "root.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), str(path), "4M"], check=True)
    return path


def test_file_in_the_image_is_read(image):
    assert read_file(image, "/netboot-boot-count") == "2\n"


def test_missing_file_is_an_error_naming_it(image):
    with pytest.raises(LabError, match="/nothing"):
        read_file(image, "/nothing")


def test_boot_count_of_a_booted_root(image):
    assert boot_count(image) == 2


def test_boot_count_of_a_root_never_booted(tmp_path):
    path = tmp_path / "blank.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", str(path), "4M"], check=True)
    assert boot_count(path) == 0
