"""`netboot lab` through the real CLI: messages for a lab that is not there."""

from __future__ import annotations

import subprocess
import sys


def _netboot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netboot", *args], capture_output=True,
                          text=True)


def test_lab_down_without_a_lab_says_so(tmp_path):
    proc = _netboot("lab", "down", "--dir", str(tmp_path))
    assert proc.returncode == 0
    assert proc.stdout == f"no lab in {tmp_path}\n"


def test_lab_boot_without_a_lab_fails_with_how_to_start_one(tmp_path):
    proc = _netboot("lab", "boot", "--dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"Error: no lab is up in {tmp_path}: start one with "
                                   "'netboot lab up'")


def test_lab_ceph_down_without_a_cluster_says_so(tmp_path):
    proc = _netboot("lab", "ceph", "down", "--dir", str(tmp_path))
    assert proc.returncode == 0
    assert proc.stdout == f"no Ceph cluster in {tmp_path}\n"


def test_lab_ceph_status_without_a_cluster_fails_with_how_to_start_one(tmp_path):
    proc = _netboot("lab", "ceph", "status", "--dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"Error: no Ceph cluster is up in {tmp_path}: start one "
                                   f"with 'netboot lab ceph up --dir {tmp_path}'")


def test_lab_boot_takes_the_secure_boot_firmware_and_up_the_secure_boot_loader(tmp_path):
    boot = _netboot("lab", "boot", "--dir", str(tmp_path), "--firmware", "uefi-secureboot")
    assert boot.returncode == 1 and "no lab is up" in boot.stderr  # the choice was accepted
    assert "grub-secureboot" in _netboot("lab", "up", "--help").stdout


def test_lab_boot_refuses_uefi_with_another_firmware(tmp_path):
    proc = _netboot("lab", "boot", "--dir", str(tmp_path), "--uefi", "--firmware", "bios")
    assert proc.returncode == 2
    assert "--uefi and --firmware bios disagree" in proc.stderr
