"""Power control of a lab VM through its simulated BMC, as a user does it: the real
`netboot client power` (run in the lab's namespace, where the lab's server is) drives
ipmitool, ipmi_sim and its chassis_control, which starts the VM as `lab boot` would; the
built-in image prints NETBOOT-ROOT-OK and powers off."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from netboot.host import iproute
from netboot.lab import bmc, lab, topology
from netboot.lab.bmc_control import CONSOLE


def _until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` holds; fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"no {what} within {timeout:.0f} s"
        time.sleep(0.5)
    return time.monotonic() - started


def test_client_power_cycle_boots_a_lab_vm_through_its_bmc_again_and_again(
        netboot_lab, boot_timeout, record_boot):
    state = netboot_lab(1)
    client = state.clients[0]
    vlan = topology.load(state.lab_dir)
    assert vlan is not None
    console = state.lab_dir / bmc.BMC_DIR / client.name / CONSOLE

    def power(action: str) -> dict:
        argv = lab.netboot_argv(Path(state.config), "client", "power", client.mac, action,
                                "--json")
        done = subprocess.run(iproute.in_netns(vlan.netns, argv), capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)[0]

    def boots() -> int:
        text = console.read_bytes().decode(errors="replace") if console.exists() else ""
        return text.count(f"NETBOOT-ROOT-OK {client.name}")

    def ipxe_starts() -> int:
        return console.read_bytes().count(b"iPXE initialising devices") if console.exists() \
            else 0

    assert power("status")["power"] == "off"
    assert power("cycle")["done"] == "was off: powered on, booting from the network"
    record_boot("BMC power-on to NETBOOT-ROOT-OK",
                _until("first boot", lambda: boots() == 1, boot_timeout))
    _until("power off after the built-in image's poweroff",
           lambda: power("status")["power"] == "off", lab.ROOT_GRACE)

    assert power("on")["power"] == "on"
    _until("iPXE of the second power-on", lambda: ipxe_starts() == 2, boot_timeout)
    assert power("cycle")["done"] == "power cycled, booting from the network"
    record_boot("BMC power cycle to NETBOOT-ROOT-OK",
                _until("boot after the cycle", lambda: boots() == 2, boot_timeout))
    assert ipxe_starts() == 3  # the cycle stopped the running VM and started a new one
    _until("power off", lambda: power("status")["power"] == "off", lab.ROOT_GRACE)

    lab.down(state.lab_dir)
    assert not any(topology.alive(pid) for name, pid in state.pids.items()
                   if name.startswith("bmc-"))
