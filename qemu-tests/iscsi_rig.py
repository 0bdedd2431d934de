"""A boot VLAN in a network namespace with a real tgtd, dnsmasq's DHCP and a QEMU guest.

Used by the fast boot tests: no PXE, the kernel and initrds go straight to
QEMU. tgtd is driven with plain ``tgtadm`` here; once netboot's own tgt adapter
is merged these fixtures should use it instead.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from netboot import iproute

SUBNET_PREFIX = 24


def random_suffix() -> str:
    return secrets.token_hex(3)


@dataclass
class Vlan:
    """A namespace holding a bridge with the server's address and a tap for one guest."""

    netns: str
    bridge: str
    tap: str
    server: IPv4Address
    guest: IPv4Address

    @classmethod
    def create(cls) -> Vlan:
        suffix = random_suffix()
        third = secrets.randbelow(254) + 1
        vlan = cls(f"nbi-{suffix}", f"nbibr-{suffix}", f"nbitap-{suffix}",
                   IPv4Address(f"198.18.{third}.1"), IPv4Address(f"198.18.{third}.10"))
        iproute.add_netns(vlan.netns)
        try:
            iproute.add_bridge(vlan.bridge, IPv4Interface(f"{vlan.server}/{SUBNET_PREFIX}"),
                               netns=vlan.netns)
            iproute.add_tap(vlan.tap, netns=vlan.netns)
            iproute.attach(vlan.tap, vlan.bridge, netns=vlan.netns)
        except BaseException:
            iproute.delete_netns(vlan.netns)
            raise
        return vlan

    def delete(self) -> None:
        iproute.delete_netns(self.netns)

    def run(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(iproute.in_netns(self.netns, argv), **kwargs)

    def popen(self, *argv: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(iproute.in_netns(self.netns, argv), **kwargs)


def stop(proc: subprocess.Popen, timeout: float = 5) -> None:
    """Terminate a process this rig started (by its own handle), killing it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Tgt:
    """A tgtd of the test's own in the namespace, on a private control port (``-C``)."""

    vlan: Vlan
    control_port: int
    proc: subprocess.Popen

    @classmethod
    def start(cls, vlan: Vlan, log: Path) -> Tgt:
        port = secrets.randbelow(20000) + 10000
        proc = vlan.popen("tgtd", "-f", "-C", str(port), "--iscsi",
                          f"portal={vlan.server}:3260", stdout=log.open("wb"),
                          stderr=subprocess.STDOUT)
        tgt = cls(vlan, port, proc)
        for _ in range(100):
            if tgt.adm("--op", "show", "--mode", "system", check=False).returncode == 0:
                return tgt
            if proc.poll() is not None:
                raise RuntimeError(f"tgtd exited: {log.read_text()}")
            time.sleep(0.1)
        stop(proc)
        raise RuntimeError("tgtd did not answer on its control port")

    def adm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.vlan.run("tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args,
                             capture_output=True, text=True, check=check)

    def add_target(self, tid: int, iqn: str, lun: Path | None, initiator: str, user: str,
                   secret: str, mutual_user: str, mutual_secret: str) -> None:
        """``iqn`` with ``lun`` as LUN 1 (None: no LUN 1), open only to ``initiator`` with
        CHAP and mutual CHAP."""
        t = str(tid)
        self.adm("--op", "new", "--mode", "target", "--tid", t, "-T", iqn)
        if lun is not None:
            self.adm("--op", "new", "--mode", "logicalunit", "--tid", t, "--lun", "1",
                     "-b", str(lun))
        # By name only: tgt admits an initiator that passes EITHER its address or its name
        # ACL, so binding "-I ALL" as well would let any initiator in.
        self.adm("--op", "bind", "--mode", "target", "--tid", t, "-Q", initiator)
        self.adm("--op", "new", "--mode", "account", "--user", user, "--password", secret)
        self.adm("--op", "bind", "--mode", "account", "--tid", t, "--user", user)
        self.adm("--op", "new", "--mode", "account", "--user", mutual_user,
                 "--password", mutual_secret)
        self.adm("--op", "bind", "--mode", "account", "--tid", t, "--user", mutual_user,
                 "--outgoing")

    def shutdown(self) -> None:
        """tgtd ignores SIGTERM: delete its targets, then ask it to exit."""
        shown = self.adm("--op", "show", "--mode", "target", check=False).stdout
        for line in shown.splitlines():
            if line.startswith("Target "):
                tid = line.split()[1].rstrip(":")
                self.adm("--op", "delete", "--mode", "target", "--tid", tid, "--force",
                         check=False)
        self.vlan.run("tgtadm", "-C", str(self.control_port), "--op", "delete", "--mode",
                      "system", capture_output=True, check=False)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            stop(self.proc)


def start_dnsmasq(vlan: Vlan, mac: str, workdir: Path) -> subprocess.Popen:
    """DHCP only (``--port=0``), on the namespace's bridge, ``mac`` fixed to ``vlan.guest``."""
    first = vlan.guest
    return vlan.popen(
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
        f"--interface={vlan.bridge}", "--bind-interfaces", "--user=root",
        f"--dhcp-range={first},{first + 40},255.255.255.0,1h",
        f"--dhcp-host={mac},{vlan.guest}", f"--dhcp-leasefile={workdir / 'leases'}",
        f"--pid-file={workdir / 'dnsmasq.pid'}", "--log-dhcp",
        f"--log-facility={workdir / 'dnsmasq.log'}",
    )


def start_report_listener(vlan: Vlan, port: int, workdir: Path) -> subprocess.Popen:
    """Python's http.server on the server address: its log has each request line in full."""
    www = workdir / "www"
    www.mkdir(exist_ok=True)
    return vlan.popen(sys.executable, "-m", "http.server", "--bind", str(vlan.server),
                      "--directory", str(www), str(port), stdout=subprocess.DEVNULL,
                      stderr=(workdir / "httpd.log").open("wb"))


def make_root_image(path: Path, workdir: Path, size: str = "24M") -> None:
    """A tiny ext4 root whose /sbin/init prints the marker with its hostname and powers off."""
    root = workdir / "rootfs"
    for d in ("bin", "sbin", "dev", "proc", "sys", "run", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    init = root / "sbin" / "init"
    init.write_text(
        "#!/bin/busybox sh\n"
        "echo \"NETBOOT-ROOT-OK $(/bin/busybox hostname)\"\n"
        "echo \"NETBOOT-HANDOFF $(/bin/busybox cat /run/initramfs/iscsi/initiatorname.iscsi)\"\n"
        "/bin/busybox sync\n"
        "/bin/busybox poweroff -f\n"
    )
    init.chmod(0o755)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "nbroot", "-E", "root_owner=0:0",
                    "-d", str(root), str(path), size], check=True)


@dataclass
class Boot:
    """One finished guest run: its serial log and how long it took to reach the marker."""

    log: str
    seconds: float
    returncode: int | None


def boot(vlan: Vlan, kernel: Path, initrd: Path, mac: str, serial: Path, marker: str,
         append: str, monitor: tuple[str, ...] = (), nic: str = "virtio-net-pci",
         timeout: float = 180) -> Boot:
    """Boot QEMU (TCG) until ``marker`` appears on the serial console or the guest stops.

    ``append`` is the kernel command line after ``console=ttyS0 panic=-1``;
    ``monitor`` are QEMU monitor commands given at start (``set_link n0 off``);
    ``nic`` is the QEMU model of the guest's one NIC.
    """
    argv = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-cpu", "qemu64", "-m", "512",
            "-nographic", "-monitor", "stdio", "-serial", f"file:{serial}", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", f"console=ttyS0 panic=-1 {append}",
            "-netdev", f"tap,id=n0,ifname={vlan.tap},script=no,downscript=no",
            "-device", f"{nic},netdev=n0,mac={mac}"]
    serial.unlink(missing_ok=True)
    start = time.monotonic()
    proc = vlan.popen(*argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write("".join(f"{command}\n" for command in monitor).encode())
    proc.stdin.flush()
    seconds = float("nan")
    try:
        while time.monotonic() - start < timeout:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if marker in text and seconds != seconds:
                seconds = time.monotonic() - start
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        stop(proc)
    return Boot(serial.read_text(errors="replace") if serial.exists() else "", seconds,
                proc.returncode)
