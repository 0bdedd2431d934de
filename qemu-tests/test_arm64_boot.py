"""ARM64 UEFI: QEMU's virt machine (cortex-a57, TCG) with Debian's AAVMF network-boots through
`netboot serve` (firmware PXE, option 93 = 11 -> Debian's signed network GRUB for arm64 ->
the arm64 cloud kernel with the arm64 base initramfs and the client's part) to its iSCSI
root: the built-in image built from arm64 busybox.

One lab of one arm64 client (`lab up --arch arm64`), booted with `lab boot` (whose default
firmware for it is aarch64-uefi): the same path as the x86 lab tests, another architecture
end to end.
"""

from __future__ import annotations

import io

from netboot.arch import Arch
from netboot.lab import lab
from netboot.lab.markers import Stage


def test_arm64_client_boots_grub_and_its_arm64_kernel_to_its_iscsi_root(netboot_lab,
                                                                        boot_timeout,
                                                                        record_boot):
    state = netboot_lab(1, arch=Arch.ARM64)
    progress, _ = lab.boot(state.lab_dir, 1, None, boot_timeout,  # the arm64 lab's: AAVMF
                           stream=io.StringIO())
    client = state.clients[0]
    console = (state.lab_dir / "vms" / f"{client.name}.serial.log").read_text()
    assert progress[0].result == "ok", (progress[0], console[-3000:])
    record_boot("aarch64-uefi tcg GRUB arm64, root mounted", progress[0].times[Stage.ROOT])
    assert f"netboot: GRUB on {client.mac}" in console  # grub/grub.cfg, read by itself
    assert f"netboot: {client.name} ({client.mac}) boots" in console  # its arm64 config
    assert "-cloud-arm64 " in console  # "Linux version 6.1.0-NN-cloud-arm64 ..."
    assert f"NETBOOT-ROOT-OK {client.name}" in console  # arm64 busybox ran the root's init
