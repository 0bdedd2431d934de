"""Secure Boot on x86-64: OVMF enforcing it with Microsoft's keys network-boots Debian's signed
chain through `netboot serve` (firmware PXE -> shim -> network GRUB -> Debian's kernel) to the
client's iSCSI root, and a kernel without Debian's signature is refused on the way.

One lab (boot.loader: grub-secureboot, dhcp.unknown: boot) serves the module. The refusal
test serves an unsigned copy of the lab's kernel for its own boot and puts the signed one back.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.lab import lab, topology
from netboot.lab.markers import Stage
from netboot.lab.vm import Accel, Firmware, VmSpec, lab_mac
from tests.support.paths import make_reachable

# Secure Boot on all the way down, as the console shows it: the kernel's EFI stub (started
# by GRUB through shim), then the kernel itself (lockdown follows from it).
SECURE_BOOT_LINES = ("EFI stub: UEFI Secure Boot is enabled.",
                     "secureboot: Secure boot enabled",
                     "Kernel is locked down from EFI Secure Boot")
# What GRUB says of a kernel shim does not accept; the kernel never starts.
REFUSED = "bad shim signature"


@pytest.fixture(scope="module")
def sb_lab(tmp_path_factory: pytest.TempPathFactory, accel: Accel,
           lab_cache: Path) -> Iterator[lab.LabState]:
    lab_dir = tmp_path_factory.mktemp("secureboot-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    try:
        yield lab.up(lab_dir, 1, loader="grub-secureboot", unknown="boot", accel=accel,
                     cache_dir=lab_cache, say=lambda _: None)
    finally:
        lab.down(lab_dir)


def _console(state: lab.LabState, name: str) -> str:
    return (state.lab_dir / "vms" / f"{name}.serial.log").read_text()


def test_secure_boot_client_boots_debians_signed_chain_to_its_root(sb_lab, boot_timeout,
                                                                   record_boot):
    progress, _ = lab.boot(sb_lab.lab_dir, 1, Firmware.UEFI_SECUREBOOT, boot_timeout,
                           stream=io.StringIO())
    client = sb_lab.clients[0]
    assert progress[0].result == "ok", progress[0]
    record_boot(f"uefi-secureboot {sb_lab.accel} shim + GRUB, root mounted",
                progress[0].times[Stage.ROOT])
    console = _console(sb_lab, client.name)
    assert "NBP filename is secureboot/x64/shimx64.efi" in console
    assert "Fetching Netboot Image secureboot/x64/grubx64.efi" in console  # shim's own fetch
    assert f"netboot: GRUB on {client.mac}" in console  # $net_default_mac names its config
    assert f"netboot: {client.name} ({client.mac}) boots" in console
    for line in SECURE_BOOT_LINES:
        assert line in console
    assert f"NETBOOT-ROOT-OK {client.name}" in console


@pytest.fixture
def unsigned_kernel(sb_lab: lab.LabState) -> Iterator[Path]:
    """The lab's served kernel with Debian's signature stripped (``sbattach --remove``), until
    the test ends. Files are swapped by rename, so serve's TFTP cache (by inode) sees each."""
    served = load_config(sb_lab.config).kernel_path
    kept, unsigned = served.with_name("vmlinuz.signed"), served.with_name("vmlinuz.unsigned")
    shutil.copy2(served, kept)
    shutil.copy2(served, unsigned)
    subprocess.run(["sbattach", "--remove", str(unsigned)], check=True, capture_output=True)
    listing = subprocess.run(["sbverify", "--list", str(unsigned)], capture_output=True,
                             text=True, check=False)
    assert "No signature table present" in listing.stdout + listing.stderr
    os.replace(unsigned, served)
    try:
        yield served
    finally:
        os.replace(kept, served)


def test_a_kernel_without_debians_signature_is_refused(sb_lab, unsigned_kernel, vms,
                                                       boot_timeout, record_boot):
    vlan = topology.load(sb_lab.lab_dir)
    assert vlan is not None
    client = sb_lab.clients[0]
    vm = vms.start(VmSpec(f"{client.name}-unsigned", client.mac, vlan.taps[0],
                          firmware=Firmware.UEFI_SECUREBOOT, accel=Accel(sb_lab.accel)),
                   vlan.netns)
    # A refused image does not end the VM (GRUB waits, then reboots): bounded by the wait.
    seen = vm.wait_for(rf"{REFUSED}|Linux version|NETBOOT-ROOT-OK", boot_timeout)
    assert REFUSED in seen.text, f"the unsigned kernel was not refused: {seen.text}"
    record_boot(f"uefi-secureboot {sb_lab.accel} unsigned kernel refused", seen.at)
    assert "EFI stub" not in vm.serial_log.read_text()  # it never ran


def test_an_unregistered_machine_is_told_so_by_grub(sb_lab, vms, boot_timeout):
    vlan = topology.load(sb_lab.lab_dir)
    assert vlan is not None
    stranger = lab_mac(0x99)  # on the client's tap while the client is off
    vm = vms.start(VmSpec("stranger", stranger, vlan.taps[0], firmware=Firmware.UEFI_SECUREBOOT,
                          accel=Accel(sb_lab.accel)), vlan.netns)
    line = vm.wait_for("not registered", boot_timeout)
    assert line.text == f"netboot: not registered: MAC {stranger}"
