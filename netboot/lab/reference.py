"""The reference boot: dnsmasq (DHCP + TFTP) and python's http.server, configured by hand the way
a seasoned admin would, booting the lab's VMs without any of netboot's servers.

It proves the lab machinery on its own, and it is the peer benchmarks
compare netboot with: `bench/time_to_root.py` boots the same VM through
:func:`serve` and through `netboot serve` in one run.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Interface
from pathlib import Path

from netboot.config import Loader
from netboot.host import iproute
from netboot.host.run import not_installed
from netboot.initramfs.cpio import Entry, write_newc
from netboot.lab import procs
from netboot.lab.topology import LabError, Topology

MARKER = "NETBOOT-REFERENCE-OK"
BUSYBOX = Path("/bin/busybox")  # busybox-static: no libraries to carry along
# The files each loader needs in the TFTP root, from Debian's ipxe, pxelinux and syslinux-common.
LOADER_FILES: dict[Loader, tuple[Path, ...]] = {
    Loader.IPXE: (Path("/usr/lib/ipxe/undionly.kpxe"), Path("/usr/lib/ipxe/ipxe.efi")),
    Loader.PXELINUX: (Path("/usr/lib/PXELINUX/pxelinux.0"),
                      Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")),
}
KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
SCRIPT_NAME = "boot.ipxe"
KERNEL_ARGS = "console=ttyS0 panic=-1"
# A unique-local (RFC 4193) prefix for router advertisements inside the lab namespace only:
# dnsmasq constructs RAs from an address on the interface, link-local ones do not count.
RA_PREFIX = IPv6Interface("fd98:18::1/64")


@dataclass(frozen=True)
class Tuning:
    """How far the reference is tuned beyond the textbook recipe.

    iPXE's "Configuring" waits for IPv6 as well as DHCP: with no router
    advertisement on the link it gives up after about 16 s (measured here;
    with one it is done in milliseconds). With no ProxyDHCP offer it also
    waits up to 11 s before its DHCPREQUEST, unless option 175.176
    (no-pxedhcp) says not to.
    """

    name: str
    router_advertisements: bool = False
    no_pxedhcp: bool = False


DEFAULT = Tuning("default")
TUNED = Tuning("tuned", router_advertisements=True, no_pxedhcp=True)
TUNINGS = (DEFAULT, TUNED)


@dataclass(frozen=True)
class Host:
    """A machine dnsmasq knows: its MAC and the fixed address it gets."""

    mac: str
    ip: IPv4Address


def marker_init(marker: str = MARKER) -> str:
    """An /init that says ``marker`` on the console and powers off at once."""
    return (
        "#!/bin/busybox sh\n"
        f"/bin/busybox echo '{marker}' > /dev/console\n"
        "/bin/busybox poweroff -f\n"
    )


def marker_initramfs(busybox: Path = BUSYBOX, marker: str = MARKER) -> bytes:
    """A tiny initramfs: static busybox, the marker /init and the console node it writes to."""
    if not busybox.exists():
        raise LabError(f"{busybox} is missing (Debian package busybox-static)")
    return write_newc([
        Entry.file("bin/busybox", busybox.read_bytes(), 0o755),
        Entry.file("init", marker_init(marker).encode(), 0o755),
        Entry.chardev("dev/console", 5, 1),
    ])


def ipxe_script(base_url: str, kernel_args: str = KERNEL_ARGS) -> str:
    """The iPXE script: kernel and initrd over HTTP; ``initrd=`` lets the EFI stub find it."""
    return (
        "#!ipxe\n"
        f"kernel {base_url}/{KERNEL_NAME} initrd={INITRD_NAME} {kernel_args}\n"
        f"initrd {base_url}/{INITRD_NAME}\n"
        "boot\n"
    )


def pxelinux_config(kernel_args: str = KERNEL_ARGS) -> str:
    """pxelinux.cfg/default: kernel and initrd over TFTP, no menu, no wait."""
    return (
        "DEFAULT linux\n"
        "LABEL linux\n"
        f"  KERNEL {KERNEL_NAME}\n"
        f"  INITRD {INITRD_NAME}\n"
        f"  APPEND {kernel_args}\n"
    )


def _boot_lines(loader: Loader, script_url: str) -> list[str]:
    if loader is Loader.PXELINUX:
        return ["dhcp-boot=pxelinux.0"]  # BIOS only; an iPXE ROM chain-loads it too
    return [f"dhcp-boot=tag:ipxe,{script_url}",
            "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi",
            "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe"]


def dnsmasq_conf(interface: str, subnet_address: IPv4Address, tftp_root: Path, script_url: str,
                 hosts: Sequence[Host], lease_file: Path, tuning: Tuning = DEFAULT,
                 loader: Loader = Loader.IPXE) -> str:
    """dnsmasq's configuration: DHCP for ``hosts`` only, TFTP for the loaders, no DNS.

    With iPXE, PXE ROMs (no iPXE user class) get a loader by client
    architecture (RFC 4578 option 93: 7 and 9 are x86-64 UEFI); iPXE, from a
    ROM or chain-loaded, gets the script's URL. With pxelinux every client
    gets pxelinux.0. ``tuning`` adds router advertisements (from
    :data:`RA_PREFIX`, which must be on the interface) and iPXE's
    no-pxedhcp option 175.176 = 1.
    """
    lines = [
        "# The reference PXE server: dnsmasq as configured by hand.",
        "port=0",
        f"interface={interface}",
        "bind-interfaces",
        f"dhcp-range={subnet_address},static,255.255.255.0,1h",
        f"dhcp-leasefile={lease_file}",
        "dhcp-authoritative",
        "log-dhcp",
        "enable-tftp",
        f"tftp-root={tftp_root}",
        "dhcp-userclass=set:ipxe,iPXE",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        *_boot_lines(loader, script_url),
        *(["dhcp-option=tag:ipxe,175,b0:01:01"] if tuning.no_pxedhcp else []),
        *([f"dhcp-range=::,constructor:{interface},ra-only", "enable-ra"]
          if tuning.router_advertisements else []),
        *(f"dhcp-host={h.mac},{h.ip}" for h in hosts),
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ReferenceServer:
    """What :func:`serve` started: where the files are and the URL iPXE is sent to."""

    root: Path
    base_url: str
    script_url: str
    dnsmasq: procs.LabProcess
    http: procs.LabProcess


_SERVING = re.compile(r"Serving HTTP on \S+ port (\d+)")


@contextmanager
def serve(topology: Topology, work_dir: Path, kernel: Path, initrd: bytes,
          hosts: Sequence[Host], kernel_args: str = KERNEL_ARGS,
          tuning: Tuning = DEFAULT, loader: Loader = Loader.IPXE) -> Iterator[ReferenceServer]:
    """dnsmasq and http.server inside the lab namespace, serving ``kernel`` and ``initrd``.

    Both run as root (dnsmasq with ``--user=root``) because the lab's files
    may sit in directories only root can enter; both stop when the block ends.
    """
    if shutil.which("dnsmasq") is None:
        raise LabError(not_installed("dnsmasq"))
    root = work_dir / "reference-root"
    root.mkdir(parents=True, exist_ok=True)
    for path in LOADER_FILES[loader]:
        if not path.exists():
            raise LabError(f"{path} is missing (Debian packages ipxe, pxelinux, syslinux-common)")
        shutil.copyfile(path, root / path.name)
    shutil.copyfile(kernel, root / KERNEL_NAME)
    (root / INITRD_NAME).write_bytes(initrd)
    (root / "pxelinux.cfg").mkdir(exist_ok=True)
    (root / "pxelinux.cfg" / "default").write_text(pxelinux_config(kernel_args))
    logs = work_dir / "logs"
    with ExitStack() as stack:
        http = procs.start(topology, "reference-http", [
            sys.executable, "-u", "-m", "http.server", "0", "--bind", str(topology.server),
            "--directory", str(root)], logs)
        stack.callback(http.stop)
        match = _SERVING.search(procs.wait_for_log(http, "Serving HTTP on"))
        assert match is not None
        base_url = f"http://{topology.server}:{match.group(1)}"
        (root / SCRIPT_NAME).write_text(ipxe_script(base_url, kernel_args))
        script_url = f"{base_url}/{SCRIPT_NAME}"
        conf = work_dir / "dnsmasq.conf"
        conf.write_text(dnsmasq_conf(topology.bridge, topology.address.network.network_address,
                                     root, script_url, hosts, work_dir / "dnsmasq.leases",
                                     tuning, loader))
        if tuning.router_advertisements:
            iproute.ip("-6", "addr", "replace", str(RA_PREFIX), "dev", topology.bridge, "nodad",
                       netns=topology.netns)
            stack.callback(iproute.ip, "-6", "addr", "del", str(RA_PREFIX), "dev",
                           topology.bridge, netns=topology.netns, check=False)
        dnsmasq = procs.start(topology, "reference-dnsmasq", [
            "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--user=root",
            f"--pid-file={work_dir / 'dnsmasq.pid'}", f"--conf-file={conf}"], logs)
        stack.callback(dnsmasq.stop)
        procs.wait_for_log(dnsmasq, "TFTP root is")
        yield ReferenceServer(root, base_url, script_url, dnsmasq, http)

