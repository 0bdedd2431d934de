"""The lab's simulated BMCs: one OpenIPMI ``ipmi_sim`` per client, inside the lab's
namespace, on the server's bridge address with a port per client (6231 for the first),
whose ``chassis_control`` (:mod:`netboot.lab.bmc_control`) starts and stops the client's
VM. ``ipmitool -I lanplus`` (so ``netboot client power``) run in the namespace powers
the VM on, off and through a cycle, and sets its next boot.

Each BMC's files are in ``<lab dir>/bmcs/<client>/``: ipmi_sim's config (0600: it
holds the password), its state, the VM's spec, pid file, console and logs. Every BMC
of a lab has user ``admin`` and the lab's password (``<lab dir>/bmcs/password``, 0600,
16 hex digits from ``secrets``), made anew by each ``lab up``.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import sys
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path

from netboot.host.files import atomic_write
from netboot.host.run import not_installed
from netboot.lab import bmc_control, procs, qmp
from netboot.lab.topology import LabError, Topology
from netboot.lab.vm import VmSpec, spec_json
from netboot.power.bmc import Bmc
from netboot.templates import render

BMC_DIR = "bmcs"
PASSWORD_FILE = "password"
USERNAME = "admin"
LAN_PORT_BASE = 6230  # client N's BMC answers IPMI on UDP port 6230 + N
SERIAL_PORT_BASE = 7230  # and its VM's KCS interface reaches it on TCP port 7230 + N
CONFIG = "lan.conf"
EMU = "bmc.emu"


@dataclass(frozen=True)
class LabBmc:
    """One client's simulated BMC: where it answers and where its files are."""

    name: str  # the client's
    directory: Path
    address: IPv4Address
    port: int
    serial_port: int

    def record(self, password: str) -> Bmc:
        """What the inventory keeps for it (as `client set --bmc` gets it)."""
        return Bmc(address=str(self.address), username=USERNAME, password=password,
                   port=self.port)


def plan(lab_dir: Path, topology: Topology, name: str, number: int) -> LabBmc:
    """Client ``number`` (from 1)'s BMC: on the server's bridge address, ports by number."""
    return LabBmc(name, lab_dir / BMC_DIR / name, topology.server, LAN_PORT_BASE + number,
                  SERIAL_PORT_BASE + number)


def new_password(lab_dir: Path) -> Path:
    """A fresh password for the lab's BMCs, in a file of mode 0600; its path."""
    path = lab_dir / BMC_DIR / PASSWORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, secrets.token_hex(8).encode(), 0o600)
    return path


def ipmi_device(bmc: LabBmc) -> tuple[str, ...]:
    """QEMU arguments giving the VM an IPMI KCS interface wired to its BMC (the guest's
    view of it; power does not need it)."""
    return ("-chardev", f"socket,id=ipmi0,host={bmc.address},port={bmc.serial_port},"
            "reconnect=10",
            "-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0",
            "-device", "isa-ipmi-kcs,bmc=bmc0")


def vm_devices(bmc: LabBmc) -> tuple[str, ...]:
    """What a VM started by ``bmc`` has beyond `lab boot`'s: the IPMI interface, and the QMP
    socket through which a soft power-off presses its ACPI power button."""
    return (*ipmi_device(bmc), *qmp.monitor_argv(bmc.directory / bmc_control.QMP))


def control_command(bmc: LabBmc) -> str:
    """The chassis_control command line ipmi_sim runs (it appends get/set and names)."""
    return shlex.join([sys.executable, "-m", "netboot.lab.bmc_control", str(bmc.directory)])


def sim_config(*, name: str, mac: str, address: IPv4Address, port: int, password: str,
               control: str | None, serial_port: int | None = None,
               username: str = USERNAME) -> str:
    """ipmi_sim's config for one BMC answering on ``address``:``port`` with one admin user;
    ``control`` is its chassis_control command (without one it refuses ``chassis bootdev``),
    ``serial_port`` where a VM's KCS interface reaches it."""
    return render("lab-bmc.conf.j2", client=name, mac=mac, address=address, port=port,
                  serial_port=serial_port, guid=secrets.token_hex(16), control=control,
                  username=username, password=password)


def write_sim(directory: Path, config: str) -> None:
    """An ipmi_sim's files in ``directory``: its config (0600), commands and state dir."""
    (directory / "state").mkdir(parents=True, exist_ok=True)
    atomic_write(directory / CONFIG, config.encode(), 0o600)
    atomic_write(directory / EMU, render("lab-bmc.emu").encode(), 0o644)


def sim_argv(directory: Path) -> list[str]:
    """ipmi_sim with the files in ``directory``, in the foreground."""
    return ["ipmi_sim", "-c", str(directory / CONFIG), "-f", str(directory / EMU),
            "-s", str(directory / "state"), "-n"]


def prepare(bmc: LabBmc, spec: VmSpec, password: str) -> None:
    """Write the BMC's files: ipmi_sim's config and commands, the VM's spec."""
    vm = replace(spec, extra=(*spec.extra, *vm_devices(bmc)))
    write_sim(bmc.directory, sim_config(name=bmc.name, mac=spec.mac, address=bmc.address,
                                        port=bmc.port, password=password,
                                        control=control_command(bmc),
                                        serial_port=bmc.serial_port))
    atomic_write(bmc.directory / bmc_control.SPEC, json.dumps(spec_json(vm), indent=2).encode(),
                 0o644)


def start(topology: Topology, bmc: LabBmc, log_dir: Path) -> procs.LabProcess:
    """ipmi_sim for ``bmc`` inside the lab's namespace; fails at once if it cannot bind."""
    if shutil.which("ipmi_sim") is None:
        raise LabError(not_installed("ipmi_sim"))
    return procs.start(topology, f"bmc-{bmc.name}", sim_argv(bmc.directory), log_dir,
                       settle=0.5)


def vm_pids(lab_dir: Path) -> list[int]:
    """The VMs the lab's BMCs started that still run."""
    return [pid for directory in sorted((lab_dir / BMC_DIR).glob("*/"))
            if (directory / bmc_control.SPEC).exists()
            and (pid := bmc_control.running_pid(directory)) is not None]
