"""QEMU command lines for lab VMs (pure: no VM is started here)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from netboot.lab.topology import LabError
from netboot.lab.vm import (
    OVMF,
    OVMF_MS_VARS,
    OVMF_SECBOOT_CODE,
    Accel,
    Firmware,
    Vm,
    VmSpec,
    fresh_efi_vars,
    lab_mac,
    qemu_argv,
)


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


def test_secure_boot_vm_enforces_it_with_smm_its_own_variables_and_no_nic_rom(tmp_path: Path):
    spec = VmSpec("c1", "52:54:00:00:00:01", "t0", firmware=Firmware.UEFI_SECUREBOOT,
                  efi_vars=tmp_path / "c1.vars.fd")
    argv = qemu_argv(spec)
    pairs = _pairs(argv)
    assert ("-machine", "q35,smm=on,accel=tcg") in pairs
    assert ("-global", "driver=cfi.pflash01,property=secure,value=on") in pairs
    assert ("-drive", "if=pflash,format=raw,unit=0,readonly=on,"
            f"file={OVMF_SECBOOT_CODE}") in pairs
    assert ("-drive", f"if=pflash,format=raw,unit=1,file={tmp_path / 'c1.vars.fd'}") in pairs
    assert ("-device", "virtio-net-pci,romfile=,netdev=n0,mac=52:54:00:00:00:01") in pairs
    assert "-bios" not in argv


def test_secure_boot_vm_needs_a_variables_file():
    with pytest.raises(LabError, match="variables"):
        qemu_argv(VmSpec("c1", "52:54:00:00:00:01", "t0", firmware=Firmware.UEFI_SECUREBOOT))


def test_each_secure_boot_vm_starts_from_a_fresh_copy_of_microsofts_variables(tmp_path: Path):
    vm = Vm(VmSpec("c1", "52:54:00:00:00:01", None, firmware=Firmware.UEFI_SECUREBOOT),
            tmp_path)
    assert vm.spec.efi_vars == tmp_path / "c1.vars.fd"
    vm.spec.efi_vars.write_bytes(b"written by an earlier boot")
    fresh_efi_vars(vm.spec)  # what start() does first
    assert vm.spec.efi_vars.read_bytes() == OVMF_MS_VARS.read_bytes()


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
