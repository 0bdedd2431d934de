"""The lab machinery on its own: VMs boot through dnsmasq and http.server, no netboot server.

These boots are the reference figures netboot is compared with (see
bench/time_to_root.py): each records seconds from VM start to the marker.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from netboot.config import Loader
from netboot.lab import reference
from netboot.lab.markers import Stage
from netboot.lab.progress import Board, ClientProgress
from netboot.lab.vm import Accel, Firmware, VmSpec, lab_mac, rom_runs
from netboot.lab.watch import watch

MAC = lab_mac(1)
HOSTS = [reference.Host(MAC, IPv4Address("198.18.0.10"))]


# pxelinux is a BIOS loader only.
PATHS = [(Firmware.BIOS, Loader.IPXE), (Firmware.UEFI, Loader.IPXE),
         (Firmware.BIOS, Loader.PXELINUX)]


@pytest.mark.parametrize("tuning", reference.TUNINGS, ids=lambda t: f"dnsmasq-{t.name}")
@pytest.mark.parametrize(("firmware", "loader"), PATHS, ids=[f"{f}-{lo}" for f, lo in PATHS])
def test_pxe_boot_through_dnsmasq_reaches_marker_and_powers_off(
        make_lab, vms, kernel, accel, tmp_path, record_boot, boot_timeout, firmware, loader,
        tuning):
    lab = make_lab(1)
    with reference.serve(lab, tmp_path, kernel, reference.marker_initramfs(), HOSTS,
                         tuning=tuning, loader=loader):
        vm = vms.start(VmSpec("client", MAC, lab.taps[0], firmware=firmware, accel=accel),
                       lab.netns)
        marker = vm.wait_for(reference.MARKER, boot_timeout)
        record_boot(f"{firmware} {accel} {loader} via dnsmasq ({tuning.name}) to marker",
                    marker.at)
        assert vm.wait_exit(30) == 0


def test_watcher_sees_dhcp_loader_and_kernel_of_a_pxe_boot(make_lab, vms, kernel, accel,
                                                           tmp_path, boot_timeout):
    lab = make_lab(1)
    with reference.serve(lab, tmp_path, kernel, reference.marker_initramfs(), HOSTS,
                         tuning=reference.TUNED):
        vm = vms.start(VmSpec("client", MAC, lab.taps[0], accel=accel), lab.netns)
        client = ClientProgress("client", MAC)
        watch([vm], Board([client], live=False), boot_timeout)
    assert client.ended == "QEMU exited (status 0)"
    assert client.times[Stage.DHCP] < client.times[Stage.LOADER] < client.times[Stage.KERNEL]


def test_direct_kernel_boot_reaches_marker(vms, kernel, accel, tmp_path, record_boot,
                                           boot_timeout):
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(reference.marker_initramfs())
    vm = vms.start(VmSpec("direct", MAC, None, accel=accel, kernel=kernel, initrd=initrd,
                          append=reference.KERNEL_ARGS))
    record_boot(f"BIOS {accel} direct kernel boot to marker",
                vm.wait_for(reference.MARKER, boot_timeout).at)


def test_rom_probe_sees_ipxe_running_under_tcg(tmp_path):
    # The positive control for the KVM probe: under TCG the ROM always runs.
    assert rom_runs(Accel.TCG, tmp_path)


def test_two_clients_boot_at_once_and_each_is_followed(make_lab, vms, kernel, accel, tmp_path,
                                                       boot_timeout):
    lab = make_lab(2)
    hosts = [reference.Host(lab_mac(i), IPv4Address(f"198.18.0.{10 + i}")) for i in (1, 2)]
    with reference.serve(lab, tmp_path, kernel, reference.marker_initramfs(), hosts,
                         tuning=reference.TUNED):
        started = [vms.start(VmSpec(f"client{i}", h.mac, tap, accel=accel), lab.netns)
                   for i, (h, tap) in enumerate(zip(hosts, lab.taps, strict=True))]
        clients = [ClientProgress(vm.spec.name, vm.spec.mac) for vm in started]
        watch(started, Board(clients, live=False), boot_timeout)
    assert [c.ended for c in clients] == ["QEMU exited (status 0)"] * 2
    assert all(Stage.KERNEL in c.times for c in clients)
