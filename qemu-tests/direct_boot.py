"""Direct boots (QEMU -kernel/-initrd, no PXE) on the lab's boot VLAN, for the initramfs tests.

The VLAN, the processes in it and the VMs are the lab's own (netboot.lab:
topology, procs, vm); tgtd is started in the namespace on a private control
port and targets are made by netboot's TgtBackend. DHCP is dnsmasq (one
fixed lease for the guest) and reports go to Python's http.server, whose
log keeps every request line in full for the tests to read.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.boot.clientpart import build_client_part
from netboot.config import Config
from netboot.configfile import parse_config
from netboot.initramfs.build import build
from netboot.initramfs.kernel import download, install
from netboot.inventory.clients import Client
from netboot.lab import procs, topology
from netboot.lab.topology import Topology
from netboot.lab.vm import STOP_GRACE, VmFactory, VmSpec, VmTimeout
from netboot.target.tgtd import free_control_port, stop_tgtd, tgtd_pid
from netboot.target.tgtmgmt import Mode, Operation, Request, call
from tests.support.paths import LAB_CACHE

MARKER = "NETBOOT-ROOT-OK"
REPORT_PORT = 8080
ISCSI_PORT = 3260
GUEST_HOST = 10  # the guest's fixed address: this host number on the VLAN's subnet
BOOT_TIMEOUT = 180.0
ENDED = rf"{MARKER}|FAILED at "  # /init's last word either way


@pytest.fixture(scope="module")
def vlan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """A boot VLAN with one tap for the module's guest (the lab's, removed afterwards)."""
    with topology.boot_vlan(tmp_path_factory.mktemp("vlan"), taps=1) as made:
        yield made


@pytest.fixture(scope="module")
def base_image(config: Config) -> Path:
    """The kernel installed and the base initramfs built from the module's ``config``."""
    return install_base_image(config, LAB_CACHE)


def guest_address(vlan: Topology) -> IPv4Address:
    return vlan.address.network.network_address + GUEST_HOST


def vlan_config(vlan: Topology, state: Path, tgt_control_port: int | None = None) -> Config:
    """netboot's config for a server on the VLAN's bridge, state in ``state``."""
    target = f"target:\n  tgt_control_port: {tgt_control_port}\n" if tgt_control_port else ""
    text = textwrap.dedent(f"""\
        server:
          interface: {vlan.bridge}
          address: {vlan.server}
          http_port: {REPORT_PORT}
        dhcp:
          subnet: {vlan.address.network}
        storage:
          state_dir: {state}
        """) + target
    return parse_config(text, str(state / "netboot.yaml"))


def install_base_image(config: Config, deb_cache: Path) -> Path:
    """The kernel installed and the base initramfs built, exactly as the CLI does it."""
    install(config, print, deb=download("cloud-amd64", deb_cache, print))
    build(config, print)
    return config.initramfs_path


@contextmanager
def tgtd(vlan: Topology, log_dir: Path) -> Iterator[int]:
    """tgtd in the VLAN on a control port of its own; yields the port, stops it afterwards."""
    port = free_control_port()
    proc = procs.start(vlan, "tgtd", ["tgtd", "-f", "-C", str(port), "--iscsi",
                                      f"portal={vlan.server}:{ISCSI_PORT}"], log_dir)
    try:
        deadline = time.monotonic() + 10
        while tgtd_pid(port) is None and time.monotonic() < deadline:
            proc.check_running()
            time.sleep(0.05)
        call(port, Request(Mode.SYSTEM, Operation.SHOW), what="wait for tgtd")
        yield port
    finally:
        stop_tgtd(port)  # tgtd ignores SIGTERM: targets deleted, then the system
        proc.stop()


@contextmanager
def dhcp(vlan: Topology, mac: str, log_dir: Path) -> Iterator[procs.LabProcess]:
    """dnsmasq's DHCP only (``--port=0``) on the bridge, ``mac`` fixed to the guest address."""
    guest = guest_address(vlan)
    proc = procs.start(vlan, "dnsmasq", [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
        f"--interface={vlan.bridge}", "--bind-interfaces", "--user=root",
        f"--dhcp-range={guest},{guest + 40},{vlan.address.netmask},1h",
        f"--dhcp-host={mac},{guest}", f"--dhcp-leasefile={log_dir / 'leases'}",
        f"--pid-file={log_dir / 'dnsmasq.pid'}", "--log-dhcp", "--log-facility=-"], log_dir)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def report_listener(vlan: Topology, log_dir: Path) -> Iterator[Path]:
    """Python's http.server on the report port; yields its log (every request line in full)."""
    www = log_dir / "www"
    www.mkdir(parents=True, exist_ok=True)
    proc = procs.start(vlan, "httpd", [sys.executable, "-m", "http.server", "--bind",
                                       str(vlan.server), "--directory", str(www),
                                       str(REPORT_PORT)], log_dir)
    try:
        yield proc.log
    finally:
        proc.stop()


def make_root_image(path: Path, workdir: Path, size: str = "24M") -> None:
    """A tiny ext4 root whose /sbin/init prints the marker with its hostname and powers off.

    Unlike the lab's built-in image it also prints what /init handed over for iscsid.
    """
    root = workdir / "rootfs"
    for d in ("bin", "sbin", "dev", "proc", "sys", "run", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    init = root / "sbin" / "init"
    init.write_text(
        "#!/bin/busybox sh\n"
        f"echo \"{MARKER} $(/bin/busybox hostname)\"\n"
        "echo \"NETBOOT-HANDOFF $(/bin/busybox cat /run/initramfs/iscsi/initiatorname.iscsi)\"\n"
        "/bin/busybox sync\n"
        "/bin/busybox poweroff -f\n"
    )
    init.chmod(0o755)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "nbroot", "-E", "root_owner=0:0",
                    "-d", str(root), str(path), size], check=True)


@dataclass(frozen=True)
class Boot:
    """One finished guest run: its serial console and seconds to the marker (None: never)."""

    log: str
    seconds: float | None


def _monitor(path: Path, command: str) -> None:
    """One QEMU monitor command over the VM's monitor socket, waited for until QEMU did it."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        for _ in range(100):  # QEMU creates the socket a moment after it starts
            with suppress(FileNotFoundError, ConnectionRefusedError):
                sock.connect(str(path))
                break
            time.sleep(0.05)

        def prompt() -> None:  # the monitor prints "(qemu) " when it is ready for a command
            seen = b""
            while b"(qemu)" not in seen:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"QEMU closed its monitor before {command!r} was done")
                seen += chunk

        prompt()
        sock.sendall(f"{command}\n".encode())
        prompt()


def boot_client(vms: VmFactory, vlan: Topology, config: Config, base_image: Path,
                client: Client, work: Path, mac_arg: str | None = None, append: str = "",
                nic: str = "virtio-net-pci", link: bool = True,
                timeout: float = BOOT_TIMEOUT) -> Boot:
    """Boot ``client`` with base + client part concatenated, as iPXE would pass them.

    The guest runs until /init's root prints the marker and powers off, or
    /init fails (and halts); ``link=False`` pulls its cable as QEMU starts.
    """
    initrd = work / "initrd.img"
    initrd.write_bytes(base_image.read_bytes() + build_client_part(config, client))
    monitor = work / "monitor.sock"
    monitor.unlink(missing_ok=True)
    args = f"{mac_arg or f'netboot.mac={client.mac}'} netboot.onfail=halt {append}".strip()
    vm = vms.start(VmSpec(f"guest{len(vms.vms)}", client.mac, vlan.taps[0],
                          kernel=config.kernel_path, initrd=initrd, nic=nic,
                          append=f"console=ttyS0 panic=-1 {args}",
                          extra=("-monitor", f"unix:{monitor},server=on,wait=off")), vlan.netns)
    if not link:
        _monitor(monitor, "set_link n0 off")
    seconds = None
    with suppress(VmTimeout):
        end = vm.wait_for(ENDED, timeout)
        seconds = end.at if end.text.startswith(MARKER) else None
        vm.wait_exit(STOP_GRACE * 6)  # the root's init goes on (it powers off); /init halts
    vm.stop()
    log = vm.serial_log.read_text(errors="replace") if vm.serial_log.exists() else ""
    print(f"--- serial log ({seconds} s to {MARKER}) ---\n{log}")
    return Boot(log, seconds)
