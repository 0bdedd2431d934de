"""Every name and URL a booting client is given, built here and nowhere else.

This is the contract between DHCP (the boot file URL), the rendered scripts
and configs, /init (its report URL), and the file servers, which resolve the
same names (:mod:`netboot.boot.catalog`). HTTP paths are these names with a
leading ``/``; TFTP uses them bare.
"""

from __future__ import annotations

import re

from netboot.arch import Arch
from netboot.config import Config
from netboot.inventory.windows import TOKEN_BYTES
from netboot.names import url_host

KERNEL = "boot/vmlinuz"
INITRAMFS = "boot/initramfs.img"
# What PXELINUX asks for: names relative to pxelinux.0 in the TFTP root.
KERNEL_SHORT = "vmlinuz"
INITRAMFS_SHORT = "initramfs.img"
CLIENTS = "clients"  # clients/<mac>/[<token>/]<file>: files rendered for one client
SCRIPT = "boot.ipxe"  # the client's iPXE script
CLIENT_PART = "client.img"  # the client's initrd part (its CHAP secrets)
PXELINUX_DIR = "pxelinux.cfg"  # pxelinux.cfg/01-<mac with dashes>
PXELINUX_PREFIX = "01-"  # ARP hardware type 1 (Ethernet), as PXELINUX names its config
REPORT = "report"  # report/<mac>/<stage>: /init telling how far it got
# Debian's signed network GRUB reads grub/grub.cfg from the TFTP root (its built-in prefix is
# /grub, under any boot file path; it tries grub/x86_64-efi/grub.cfg first): netboot's, the
# same for every machine, which goes on to grub/clients/<cpu>/<mac>.cfg by the MAC GRUB booted
# from and its $grub_cpu (x86_64, arm64), which names the architecture to boot.
GRUB_DIR = "grub"
GRUB_CONFIG = f"{GRUB_DIR}/grub.cfg"
GRUB_CLIENTS = "clients"  # grub/clients/<cpu>/<mac>.cfg
GRUB_SUFFIX = ".cfg"


def client_file(mac: str, name: str, token: str | None = None) -> str:
    """``clients/<mac>/<token>/<name>``: the token of one boot (netboot.inventory.windows)
    in the path, so TFTP and HTTP read it alike; ``clients/<mac>/<name>`` without one."""
    return f"{CLIENTS}/{mac}/{token}/{name}" if token else f"{CLIENTS}/{mac}/{name}"


TOKEN_SHOWN = "<token>"
_TOKEN = re.compile(rf"(?<=/)[0-9a-f]{{{2 * TOKEN_BYTES}}}(?=/)")  # a path component that is
                                                                  # a boot token (hex)


def redact(name: str) -> str:
    """``name`` (a path or URL) fit for a log: an unspent boot token is a secret."""
    return _TOKEN.sub(TOKEN_SHOWN, name)


def pxelinux_config(mac: str) -> str:
    """``pxelinux.cfg/01-aa-bb-cc-dd-ee-ff``: the name PXELINUX asks for first."""
    return f"{PXELINUX_DIR}/{PXELINUX_PREFIX}{mac.replace(':', '-')}"


def kernel(arch: Arch) -> str:
    """The kernel served to ``arch``'s clients: ``boot/vmlinuz`` (amd64), ``boot/arm64/vmlinuz``."""
    return KERNEL if arch is Arch.AMD64 else f"boot/{arch}/vmlinuz"


def initramfs(arch: Arch) -> str:
    """The base initramfs of ``arch``: ``boot/initramfs.img``, ``boot/arm64/initramfs.img``."""
    return INITRAMFS if arch is Arch.AMD64 else f"boot/{arch}/initramfs.img"


def grub_client_config(mac: str, cpu: str) -> str:
    """``grub/clients/x86_64/aa:bb:cc:dd:ee:ff.cfg``: GRUB's ``$net_default_mac`` is
    lower-case hex with colons, as netboot writes MACs; ``cpu`` is its ``$grub_cpu``."""
    return f"{GRUB_DIR}/{GRUB_CLIENTS}/{cpu}/{mac}{GRUB_SUFFIX}"


def pxelinux_client_part(mac: str, token: str | None = None) -> str:
    """The client part as PXELINUX names it: dashes, since it reads ``host::path`` in names."""
    return client_file(mac.replace(":", "-"), CLIENT_PART, token)


def base_url(config: Config) -> str:
    """This server's HTTP root, on the address clients boot from (Config.boot_address)."""
    return f"http://{url_host(config.boot_address)}:{config.server.http_port}"


def tftp_url(config: Config, name: str) -> str:
    """The TFTP URL of ``name`` (RFC 3617), for DHCPv6's boot file URL option."""
    return f"tftp://{url_host(config.boot_address)}/{name}"


def url(config: Config, name: str) -> str:
    """The HTTP URL of ``name``."""
    return f"{base_url(config)}/{name}"


def script_url(config: Config, mac: str, token: str | None = None) -> str:
    return url(config, client_file(mac, SCRIPT, token))


def client_part_url(config: Config, mac: str, token: str | None = None) -> str:
    return url(config, client_file(mac, CLIENT_PART, token))


def report_url(config: Config, mac: str) -> str:
    """Where /init reports its stages: ``GET {url}/{stage}``."""
    return url(config, f"{REPORT}/{mac}")
