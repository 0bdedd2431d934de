"""QEMU command lines for lab VMs (pure: no VM is started here)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from netboot.lab.topology import LabError
from netboot.lab.vm import OVMF, Accel, Firmware, VmSpec, lab_mac, qemu_argv


def _pairs(argv: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(argv))


def test_bios_vm_pxe_boots_from_its_tap_under_tcg():
    argv = qemu_argv(VmSpec("c1", "52:54:00:00:00:01", "nblabc-t0"))
    pairs = _pairs(argv)
    assert ("-machine", "pc,accel=tcg") in pairs
    assert ("-cpu", "qemu64") in pairs
    assert ("-netdev", "tap,ifname=nblabc-t0,script=no,downscript=no,id=n0") in pairs
    assert ("-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01") in pairs
    assert ("-boot", "n") in pairs
    assert {"-nographic", "-no-reboot"} <= set(argv)


def test_uefi_vm_uses_q35_and_ovmf():
    pairs = _pairs(qemu_argv(VmSpec("c1", "52:54:00:00:00:01", "t0", firmware=Firmware.UEFI)))
    assert ("-machine", "q35,accel=tcg") in pairs
    assert ("-bios", str(OVMF)) in pairs


def test_kvm_vm_uses_the_host_cpu():
    pairs = _pairs(qemu_argv(VmSpec("c1", "52:54:00:00:00:01", "t0", accel=Accel.KVM)))
    assert ("-machine", "pc,accel=kvm") in pairs
    assert ("-cpu", "host") in pairs


def test_direct_kernel_boot_passes_kernel_initrd_and_append_instead_of_pxe():
    spec = VmSpec("c1", "52:54:00:00:00:01", None, kernel=Path("/k"), initrd=Path("/i"),
                  append="console=ttyS0")
    argv = qemu_argv(spec)
    pairs = _pairs(argv)
    assert ("-kernel", "/k") in pairs and ("-initrd", "/i") in pairs
    assert ("-append", "console=ttyS0") in pairs
    assert "-boot" not in argv and "-netdev" not in argv


def test_lab_macs_are_locally_administered_and_distinct():
    assert lab_mac(1) == "52:54:00:00:00:01"
    assert lab_mac(0x1234) == "52:54:00:00:12:34"


def test_lab_mac_out_of_range_is_an_error():
    with pytest.raises(LabError, match="out of range"):
        lab_mac(1 << 24)


def test_vm_nic_model_can_be_chosen():
    pairs = _pairs(qemu_argv(VmSpec("c1", "52:54:00:00:00:01", "t0", nic="rtl8139")))
    assert ("-device", "rtl8139,netdev=n0,mac=52:54:00:00:00:01") in pairs


def test_uefi_http_vm_has_no_nic_rom_and_no_pxe_in_ovmf():
    pairs = _pairs(qemu_argv(VmSpec("c1", "52:54:00:00:00:01", "t0",
                                    firmware=Firmware.UEFI_HTTP)))
    assert ("-bios", str(OVMF)) in pairs and ("-global", "virtio-net-pci.romfile=") in pairs
    assert {("-fw_cfg", f"name=opt/org.tianocore/IPv{v}PXESupport,string=no")
            for v in (4, 6)} <= set(pairs)
