"""Every name and URL a booting client is given, built here and nowhere else.

This is the contract between DHCP (the boot file URL), the rendered scripts
and configs, /init (its report URL), and the file servers, which resolve the
same names (:mod:`netboot.boot.catalog`). HTTP paths are these names with a
leading ``/``; TFTP uses them bare.
"""

from __future__ import annotations

from netboot.config import Config

KERNEL = "boot/vmlinuz"
INITRAMFS = "boot/initramfs.img"
# What PXELINUX asks for: names relative to pxelinux.0 in the TFTP root.
KERNEL_SHORT = "vmlinuz"
INITRAMFS_SHORT = "initramfs.img"
CLIENTS = "clients"  # clients/<mac>/<file>: files rendered for one client
SCRIPT = "boot.ipxe"  # the client's iPXE script
CLIENT_PART = "client.img"  # the client's initrd part (its CHAP secrets)
PXELINUX_DIR = "pxelinux.cfg"  # pxelinux.cfg/01-<mac with dashes>
PXELINUX_PREFIX = "01-"  # ARP hardware type 1 (Ethernet), as PXELINUX names its config
REPORT = "report"  # report/<mac>/<stage>: /init telling how far it got


def client_file(mac: str, name: str) -> str:
    """``clients/<mac>/<name>``."""
    return f"{CLIENTS}/{mac}/{name}"


def pxelinux_config(mac: str) -> str:
    """``pxelinux.cfg/01-aa-bb-cc-dd-ee-ff``: the name PXELINUX asks for first."""
    return f"{PXELINUX_DIR}/{PXELINUX_PREFIX}{mac.replace(':', '-')}"


def pxelinux_client_part(mac: str) -> str:
    """The client part as PXELINUX names it: dashes, since it reads ``host::path`` in names."""
    return client_file(mac.replace(":", "-"), CLIENT_PART)


def base_url(config: Config) -> str:
    """This server's HTTP root."""
    return f"http://{config.server.address}:{config.server.http_port}"


def url(config: Config, name: str) -> str:
    """The HTTP URL of ``name``."""
    return f"{base_url(config)}/{name}"


def script_url(config: Config, mac: str) -> str:
    return url(config, client_file(mac, SCRIPT))


def client_part_url(config: Config, mac: str) -> str:
    return url(config, client_file(mac, CLIENT_PART))


def report_url(config: Config, mac: str) -> str:
    """Where /init reports its stages: ``GET {url}/{stage}``."""
    return url(config, f"{REPORT}/{mac}")
