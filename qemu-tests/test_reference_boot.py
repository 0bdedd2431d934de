"""The lab machinery on its own: VMs boot through dnsmasq and http.server, no netboot server.

These boots are the reference figures netboot is compared with (see
bench/time_to_root.py): each records seconds from VM start to the marker.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from conftest import BOOT_TIMEOUT

from netboot.lab import reference
from netboot.lab.markers import Stage
from netboot.lab.progress import Board, ClientProgress
from netboot.lab.vm import Accel, Firmware, VmSpec, lab_mac, rom_runs
from netboot.lab.watch import watch

MAC = lab_mac(1)
HOSTS = [reference.Host(MAC, IPv4Address("198.18.0.10"))]


@pytest.mark.parametrize("tuning", [reference.DEFAULT, reference.TUNED],
                         ids=["dnsmasq-default", "dnsmasq-tuned"])
@pytest.mark.parametrize("firmware", list(Firmware), ids=str)
def test_pxe_boot_through_dnsmasq_reaches_marker_and_powers_off(
        make_lab, vms, kernel, accel, tmp_path, record_boot, firmware, tuning):
    lab = make_lab(1)
    with reference.serve(lab, tmp_path, kernel, reference.marker_initramfs(), HOSTS,
                         tuning=tuning):
        vm = vms.start(VmSpec("client", MAC, lab.taps[0], firmware=firmware, accel=accel),
                       lab.netns)
        marker = vm.wait_for(reference.MARKER, BOOT_TIMEOUT)
        record_boot(f"{firmware} {accel} PXE via dnsmasq "
                    f"({'tuned' if tuning == reference.TUNED else 'default'}) to marker",
                    marker.at)
        assert vm.wait_exit(30) == 0


def test_watcher_sees_dhcp_loader_and_kernel_of_a_pxe_boot(make_lab, vms, kernel, accel,
                                                           tmp_path):
    lab = make_lab(1)
    with reference.serve(lab, tmp_path, kernel, reference.marker_initramfs(), HOSTS,
                         tuning=reference.TUNED):
        vm = vms.start(VmSpec("client", MAC, lab.taps[0], accel=accel), lab.netns)
        client = ClientProgress("client", MAC)
        watch([vm], Board([client], live=False), BOOT_TIMEOUT)
    assert client.ended == "QEMU exited (status 0)"
    assert client.times[Stage.DHCP] < client.times[Stage.LOADER] < client.times[Stage.KERNEL]


def test_direct_kernel_boot_reaches_marker(vms, kernel, accel, tmp_path, record_boot):
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(reference.marker_initramfs())
    vm = vms.start(VmSpec("direct", MAC, None, accel=accel, kernel=kernel, initrd=initrd,
                          append=reference.KERNEL_ARGS))
    record_boot(f"BIOS {accel} direct kernel boot to marker",
                vm.wait_for(reference.MARKER, BOOT_TIMEOUT).at)


def test_rom_probe_sees_ipxe_running_under_tcg(tmp_path):
    # The positive control for the KVM probe: under TCG the ROM always runs.
    assert rom_runs(Accel.TCG, tmp_path)
