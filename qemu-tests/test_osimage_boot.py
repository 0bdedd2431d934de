"""A Debian golden image boots from a root LUN on a real tgtd, in QEMU, with mutual CHAP.

The image is built with its own kernel and initramfs-tools, so Debian's own
`iscsi` initramfs script logs in (the same `iscsistart` login netboot's /init
makes) and the image's open-iscsi takes the session over. The guest reaches
tgtd on 127.0.0.1 through QEMU's user-mode network (10.0.2.2 is the host's
loopback there), so nothing leaves this machine.

The sanboot test boots the other way: QEMU's iPXE runs netboot's sanboot script,
logs in itself and boots GRUB from the LUN; the image's kernel logs in again
from the iBFT.

Marked ``mirror`` and ``qemu``: one cold image build (about 3 minutes) and one
TCG boot per clone (2-4 minutes each).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.configfile import parse_config
from netboot.inventory import Client
from netboot.osfiles import DEFAULT_OPTIONS, OsOptions
from netboot.osimage import build_debian_image
from netboot.sanboot import render_sanboot_script

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tgtd and mmdebstrap"),
    pytest.mark.qemu, pytest.mark.mirror,
]

TARGET = "iqn.2026-11.org.example:target:web1"
INITIATOR = "iqn.2026-11.org.example:initiator:web1"
CHAP = ("web1", "Secret0123456789")
MUTUAL = ("web1-target", "Mutual0123456789")
BOOT_TIMEOUT = 600
CLIENT = Client(
    mac="52:54:00:12:34:56", hostname="web1", ip=IPv4Address("10.0.2.15"), image="deb12san",
    lun_path=None, lun_size=2 << 30, initiator_iqn=INITIATOR, target_iqn=TARGET,
    chap_user=CHAP[0], chap_secret=CHAP[1], mutual_secret=MUTUAL[1], created=1_700_000_000,
    boot_method="sanboot",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tgtd:
    """A private tgtd (own control port) serving one LUN on 127.0.0.1 with mutual CHAP."""

    def __init__(self, lun: Path) -> None:
        self.control = 20000 + free_port() % 12000  # tgtd keeps it in a C short
        self.port = free_port()
        subprocess.run(["tgtd", "-C", str(self.control), "--iscsi",
                        f"portal=127.0.0.1:{self.port}"], check=True)
        time.sleep(0.5)
        self.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", TARGET)
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
                 "-b", str(lun))
        self.adm("--op", "bind", "--mode", "target", "--tid", "1", "-Q", INITIATOR)
        for (user, secret), extra in ((CHAP, ()), (MUTUAL, ("--outgoing",))):
            self.adm("--op", "new", "--mode", "account", "--user", user, "--password", secret)
            self.adm("--op", "bind", "--mode", "account", "--tid", "1", "--user", user, *extra)

    def adm(self, *args: str) -> None:
        subprocess.run(["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args],
                       check=True, capture_output=True)

    def stop(self) -> None:
        self.adm("--op", "delete", "--mode", "target", "--tid", "1", "--force")
        self.adm("--op", "delete", "--mode", "system")


@pytest.fixture(scope="module")
def build_root(tmp_path_factory) -> Path:
    """One cache for both builds: the sanboot image reuses the first one's tarball."""
    return tmp_path_factory.mktemp("build")


def build(root: Path, name: str, options: OsOptions = DEFAULT_OPTIONS) -> Path:
    return build_debian_image(name, "bookworm", ("linux-image-amd64", "initramfs-tools"), None,
                              None, root / "cache", root / "images", lambda m: None, options)


@pytest.fixture(scope="module")
def golden(build_root) -> tuple[Path, Path, Path]:
    """(image, vmlinuz, initrd) of a Debian 12 image with its own kernel."""
    image = build(build_root, "deb12")
    boot = subprocess.run(["debugfs", "-R", "ls -p /boot", str(image)], capture_output=True,
                          text=True, check=True).stdout
    files = {}
    for kind in ("vmlinuz", "initrd.img"):
        name = re.search(rf"/({re.escape(kind)}-[^/]+)/", boot)[1]
        files[kind] = build_root / kind
        subprocess.run(["debugfs", "-R", f"dump /boot/{name} {files[kind]}", str(image)],
                       check=True, capture_output=True)
    return image, files["vmlinuz"], files["initrd.img"]


def boot(image: Path, workdir: Path, qemu_args: Callable[[Tgtd], list[str]]) -> str:
    """Clone ``image``, serve it, boot QEMU with ``qemu_args``; the console up to NETBOOT-OS-END."""
    lun = workdir / "lun.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(lun)], check=True)
    tgtd = Tgtd(lun)
    console = workdir / "console.log"
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-cpu", "qemu64", "-m", "1024",
         "-display", "none", "-serial", f"file:{console}", "-no-reboot", *qemu_args(tgtd)])
    started = time.monotonic()
    try:
        text = ""
        while time.monotonic() < started + BOOT_TIMEOUT and qemu.poll() is None:
            text = console.read_text(errors="replace") if console.exists() else ""
            if "NETBOOT-OS-END" in text:
                print(f"{workdir.name}: NETBOOT-OS-END {time.monotonic() - started:.0f} s "
                      "after QEMU started")
                return text
            time.sleep(2)
        raise AssertionError("no NETBOOT-OS-END on the console:\n" + text[-3000:])
    finally:
        qemu.kill()
        qemu.wait()
        tgtd.stop()


def initramfs_tools_login(golden: tuple[Path, Path, Path]) -> Callable[[Tgtd], list[str]]:
    """Direct kernel boot; Debian's initramfs logs in from the kernel command line."""
    _image, kernel, initrd = golden

    def args(tgtd: Tgtd) -> list[str]:
        cmdline = (f"console=ttyS0 ip=dhcp rw root=/dev/sda iscsi_initiator={INITIATOR} "
                   f"iscsi_target_name={TARGET} iscsi_target_ip=10.0.2.2 "
                   f"iscsi_target_port={tgtd.port} iscsi_username={CHAP[0]} "
                   f"iscsi_password={CHAP[1]} iscsi_in_username={MUTUAL[0]} "
                   f"iscsi_in_password={MUTUAL[1]}")
        return ["-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
                "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]
    return args


@pytest.fixture(scope="module")
def consoles(golden, tmp_path_factory) -> Iterator[list[str]]:
    yield [boot(golden[0], tmp_path_factory.mktemp(f"clone{i}"), initramfs_tools_login(golden))
           for i in (1, 2)]


@pytest.fixture(scope="module")
def sanboot_console(build_root, tmp_path_factory) -> str:
    """iPXE (QEMU's own ROM, over TFTP from QEMU's user network) sanboots the clone with
    netboot's script; GRUB on the LUN boots its kernel, which logs in from the iBFT."""
    image = build(build_root, "deb12san", OsOptions(sanboot=True))
    workdir = tmp_path_factory.mktemp("sanboot")
    tftp = workdir / "tftp"
    tftp.mkdir()

    def args(tgtd: Tgtd) -> list[str]:
        config = parse_config("server:\n  address: 10.0.2.2\ndhcp:\n  subnet: 10.0.2.0/24\n"
                              f"target:\n  portal_port: {tgtd.port}\n", "netboot.yaml")
        (tftp / "boot.ipxe").write_text(render_sanboot_script(config, CLIENT))
        return ["-boot", "n", "-netdev", f"user,id=n0,tftp={tftp},bootfile=boot.ipxe",
                "-device", f"virtio-net-pci,netdev=n0,mac={CLIENT.mac}"]
    return boot(image, workdir, args)


def report(console: str, marker: str) -> list[list[str]]:
    return [line.split(marker, 1)[1].split() for line in console.splitlines() if marker in line]


def test_clone_boots_to_a_running_system(consoles):
    assert report(consoles[0], "NETBOOT-OS-UP ")[0][1] == "running"


def test_running_system_lists_the_root_session(consoles):
    assert re.search(rf"^tcp: \[\d+\] 10\.0\.2\.2:\d+,1 {re.escape(TARGET)}", consoles[0],
                     re.MULTILINE)


def test_no_unit_failed(consoles):
    assert report(consoles[0], "NETBOOT-OS-FAILED ") == []


def test_two_clones_have_their_own_machine_id_and_ssh_host_key(consoles):
    first, second = (report(c, "NETBOOT-OS-ID ")[0] for c in consoles)
    assert first[0] != second[0] and first[1] != second[1]
    assert "no-ssh-host-key" not in first


def test_session_was_taken_over_without_io_errors(consoles):
    assert "I/O error" not in consoles[0]


def test_sanboot_clone_boots_to_a_running_system_named_from_the_ibft(sanboot_console):
    assert report(sanboot_console, "NETBOOT-OS-UP ")[0] == [CLIENT.hostname, "running"]


def test_sanboot_system_lists_the_session_ipxe_opened(sanboot_console):
    assert re.search(rf"^tcp: \[\d+\] 10\.0\.2\.2:\d+,1 {re.escape(TARGET)}", sanboot_console,
                     re.MULTILINE)
    assert report(sanboot_console, "NETBOOT-OS-FAILED ") == []
