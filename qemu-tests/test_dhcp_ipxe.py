"""Real firmware against netboot's DHCP: QEMU's iPXE ROM (SeaBIOS, virtio-net) on the lab VLAN.

The ROM must take netboot's OFFER/ACK (options 175.176, 60, 66/67) and ask
for its per-client script at the URL netboot gave, which is the line these
tests wait for on the console. With router advertisements on, iPXE does
not sit out its IPv6 wait: the two times are recorded (figures, not
assertions) so the run shows the difference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BOOT_TIMEOUT

from netboot.configfile import load_config
from netboot.inventory.store import Inventory
from netboot.lab.vm import Firmware, VmSpec, lab_mac
from netboot.provisioning.clients import add_client
from tests.support import REPO
from tests.support.paths import make_reachable

MAC = lab_mac(7)
# iPXE prints the script's URL (with its token, its colons as %3A, wrapped at 80 columns),
# then "... ok" once it has the script
SCRIPT = r"/boot\.ipxe\.\.\. ok"
# No option ROM on the NIC: OVMF's own PXE (EDK2 PxeBcDxe) boots, as a vendor UEFI PXE ROM does.
NATIVE_UEFI_PXE = ("-global", "virtio-net-pci.romfile=")


def start_serve(lab, tmp_path: Path, router_advertisements: bool = True) -> subprocess.Popen:
    """``netboot serve`` on the lab's bridge (DHCP, HTTP, TFTP; no iSCSI target), serving
    the boot loaders `make setup` copied into the checkout's tftproot."""
    tftp_root = REPO / "tftproot"
    config_path = tmp_path / "netboot.yaml"
    config_path.write_text(
        f"server:\n  interface: {lab.bridge}\n  address: {lab.server}\n"
        f"  tftp_root: {tftp_root}\n"
        f"storage:\n  state_dir: {tmp_path / 'state'}\n"
        "target:\n  manage: false\n"
        f"dhcp:\n  subnet: {lab.address.network}\n"
        f"  router_advertisements: {str(router_advertisements).lower()}\n")
    config = load_config(config_path)
    with Inventory(config.storage.database) as inventory:
        add_client(config, inventory, MAC)
    make_reachable(tmp_path, tftp_root)  # for the network part, run as server.user
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(lab.argv([sys.executable, "-m", "netboot", "--config",
                                          str(config_path), "--log-level", "debug", "serve"]),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while "serving:" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return proc


def stop_serve(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


@pytest.mark.parametrize("router_advertisements", [True, False], ids=["ra-on", "ra-off"])
def test_ipxe_rom_asks_for_the_script_url_netboot_gave(make_lab, vms, accel, tmp_path,
                                                       record_boot, router_advertisements):
    lab = make_lab(1)
    serve = start_serve(lab, tmp_path, router_advertisements)
    try:
        vm = vms.start(VmSpec("client", MAC, lab.taps[0], accel=accel), lab.netns)
        line = vm.wait_for(SCRIPT, BOOT_TIMEOUT)
    finally:
        stop_serve(serve)
    log = (tmp_path / "serve.log").read_text()
    assert f"[{MAC}] REQUEST" in log
    assert f"boot http://{lab.server}:8080/clients/{MAC}/<token>/boot.ipxe" in log
    record_boot(f"BIOS {accel} iPXE ROM to script request, router advertisements "
                f"{'on' if router_advertisements else 'off'}", line.at)


def test_uefi_native_pxe_chains_to_ipxe_efi_then_to_the_script(make_lab, vms, accel, tmp_path,
                                                              record_boot):
    """EDK2's PXE (arch 7, no user class) gets ipxe.efi by TFTP; that iPXE asks DHCP again
    and gets the script URL, not ipxe.efi again: the chain does not loop."""
    lab = make_lab(1)
    serve = start_serve(lab, tmp_path)
    try:
        vm = vms.start(VmSpec("client", MAC, lab.taps[0], firmware=Firmware.UEFI, accel=accel,
                              extra=NATIVE_UEFI_PXE), lab.netns)
        line = vm.wait_for(SCRIPT, BOOT_TIMEOUT)
    finally:
        stop_serve(serve)
    log = (tmp_path / "serve.log").read_text()
    assert "boot ipxe.efi (arch 7)" in log
    assert f"boot http://{lab.server}:8080/clients/{MAC}/<token>/boot.ipxe" in log
    record_boot(f"UEFI {accel} native PXE -> ipxe.efi -> script request", line.at)
