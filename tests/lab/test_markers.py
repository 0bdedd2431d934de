"""Serial console lines -> boot stages, on consoles captured from real lab boots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netboot.lab.markers import Marker, Stage, classify
from netboot.lab.vm import clean_line

SERIAL = Path(__file__).parent / "data" / "serial"
_STAMP = re.compile(r"^\[\s*([0-9.]+)\] (.*)$")


def _first_stages(name: str) -> dict[Stage, tuple[float, str]]:
    """The first time each stage shows in a captured ``[  t] line`` serial log."""
    seen: dict[Stage, tuple[float, str]] = {}
    for row in (SERIAL / name).read_text().splitlines():
        m = _STAMP.match(row)
        assert m, row
        marker = classify(m.group(2))
        if marker is not None and marker.stage not in seen:
            seen[marker.stage] = (float(m.group(1)), marker.detail)
    return seen


def test_bios_ipxe_boot_shows_dhcp_loader_kernel_in_order():
    stages = _first_stages("bios-ipxe-dnsmasq.log")
    assert list(stages) == [Stage.DHCP, Stage.LOADER, Stage.KERNEL]
    assert stages[Stage.DHCP][0] < stages[Stage.LOADER][0] < stages[Stage.KERNEL][0]


def test_ipxe_script_fetch_is_the_loader_stage_with_its_url():
    stages = _first_stages("bios-ipxe-dnsmasq.log")
    assert re.fullmatch(r"http://198\.18\.0\.1:\d+/boot\.ipxe", stages[Stage.LOADER][1])


def test_kernel_fetch_counts_as_kernel_stage():
    stages = _first_stages("uefi-ipxe-dnsmasq.log")
    assert stages[Stage.KERNEL][1].endswith("/vmlinuz")


def test_uefi_ipxe_boot_shows_dhcp_loader_kernel_in_order():
    assert list(_first_stages("uefi-ipxe-dnsmasq.log")) == [Stage.DHCP, Stage.LOADER,
                                                            Stage.KERNEL]


def test_pxelinux_boot_shows_dhcp_loader_and_kernel_loaded_by_pxelinux():
    stages = _first_stages("bios-pxelinux-dnsmasq.log")
    assert list(stages) == [Stage.DHCP, Stage.LOADER, Stage.KERNEL]
    assert stages[Stage.LOADER][1] == "tftp://198.18.0.1/pxelinux.0"
    assert stages[Stage.KERNEL][1] == "vmlinuz"


def test_secure_boot_chain_shows_dhcp_shim_kernel_and_root_in_order():
    stages = _first_stages("uefi-secureboot-grub-netboot.log")
    assert list(stages) == [Stage.DHCP, Stage.LOADER, Stage.KERNEL, Stage.INITRAMFS,
                            Stage.NETWORK, Stage.LOGIN, Stage.ROOT]
    assert stages[Stage.DHCP][1] == "198.18.0.2"


@pytest.mark.parametrize(("line", "detail"), [
    ("error: bad shim signature.", "bad shim signature"),  # GRUB: a kernel shim refuses
    ("Verification failed: (0x1A) Security Violation",  # shim: an unsigned GRUB
     "Verification failed: (0x1A) Security Violation"),
])
def test_a_secure_boot_refusal_is_a_failure(line, detail):
    assert classify(line) == Marker(Stage.FAILED, detail)


def test_pxelinux_loading_its_initrd_is_no_stage():
    assert classify("Loading initrd.img...ok") is None


def test_linux_banner_is_kernel_stage_with_version():
    line = ("Probing EDD (edd=off to disable)... o[    0.000000] Linux version "
            "6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org)")
    assert classify(line) == Marker(Stage.KERNEL, "6.1.0-56-cloud-amd64")


def test_root_ok_line_is_root_stage_with_hostname():
    assert classify("NETBOOT-ROOT-OK node-52540000000a") == Marker(Stage.ROOT,
                                                                    "node-52540000000a")


def test_init_failure_line_carries_stage_and_cause():
    line = "netboot[9.02]: FAILED at login: CHAP rejected: the target refused user 'lab-01'"
    assert classify(line) == Marker(
        Stage.FAILED, "login: CHAP rejected: the target refused user 'lab-01'")


def test_init_chatter_is_no_stage():
    assert classify("netboot[5.68]: note: module crc32c_intel did not load") is None


def test_bios_ipxe_boot_to_iscsi_root_shows_every_stage_in_order():
    stages = _first_stages("bios-ipxe-netboot.log")
    assert list(stages) == [Stage.DHCP, Stage.LOADER, Stage.KERNEL, Stage.INITRAMFS,
                            Stage.NETWORK, Stage.LOGIN, Stage.ROOT]
    assert stages[Stage.NETWORK][1] == "198.18.0.2/24"
    assert stages[Stage.LOGIN][1] == "/dev/sda"


def test_ipxe_without_a_boot_file_is_failed():
    marker = classify("Nothing to boot: No such file or directory (http://ipxe.org/2d03e13b)")
    assert marker == Marker(Stage.FAILED, "Nothing to boot")


def test_seabios_giving_up_is_failed():
    assert classify("No bootable device.") == Marker(Stage.FAILED, "No bootable device")


def test_ipxe_without_dhcp_answer_is_failed():
    marker = classify("Configuring (net0 52:54:00:12:34:56).................. No configuration "
                      "methods")
    assert marker is not None and marker.stage is Stage.FAILED


def test_ipxe_rx_error_statistics_are_not_a_failure():
    assert classify('[RXE: 1 x "Operation not supported (http://ipxe.org/3c046083)"]') is None


def test_ordinary_kernel_line_is_no_stage():
    assert classify("[    1.631134] Run /init as init process") is None


def test_raw_seabios_ipxe_console_cleans_to_plain_lines():
    raw = (SERIAL / "seabios-ipxe-rom.raw").read_bytes()
    lines = [clean_line(r.replace(b"\r", b"")) for r in raw.split(b"\n")]
    lines = [line for line in lines if line]
    assert lines[0] == "SeaBIOS (version 1.16.2-debian-1.16.2-1)"
    assert "iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http" \
        in lines
    # The "Press Ctrl-B" countdown erases itself with backspaces; the NIC line remains.
    assert any(line.startswith("net0: 52:54:00:12:34:56 using virtio-net") for line in lines)
    assert not any("\x1b" in line or "\b" in line for line in lines)
