"""The reference boot's hand-written dnsmasq configuration, iPXE script and marker initramfs."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.config import Loader
from netboot.lab.reference import (
    DEFAULT,
    LOADER_FILES,
    TUNED,
    Host,
    dnsmasq_conf,
    ipxe_script,
    marker_init,
    marker_initramfs,
    pxelinux_config,
)
from netboot.lab.topology import LabError

HOSTS = [Host("52:54:00:00:00:01", IPv4Address("198.18.0.10"))]


def _conf(tmp_path: Path, tuning=DEFAULT, loader=Loader.IPXE) -> str:
    return dnsmasq_conf("nbl123456-br", IPv4Address("198.18.0.0"), tmp_path / "root",
                        "http://198.18.0.1:8080/boot.ipxe", HOSTS, tmp_path / "leases", tuning,
                        loader)


def test_dnsmasq_conf_is_the_textbook_pxe_recipe(tmp_path):
    assert _conf(tmp_path) == f"""\
# The reference PXE server: dnsmasq as configured by hand.
port=0
interface=nbl123456-br
bind-interfaces
dhcp-range=198.18.0.0,static,255.255.255.0,1h
dhcp-leasefile={tmp_path}/leases
dhcp-authoritative
log-dhcp
enable-tftp
tftp-root={tmp_path}/root
dhcp-userclass=set:ipxe,iPXE
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-boot=tag:ipxe,http://198.18.0.1:8080/boot.ipxe
dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe
dhcp-host=52:54:00:00:00:01,198.18.0.10
"""


def test_tuned_dnsmasq_conf_adds_no_pxedhcp_and_router_advertisements(tmp_path):
    extra = set(_conf(tmp_path, TUNED).splitlines()) - set(_conf(tmp_path).splitlines())
    assert extra == {"dhcp-option=tag:ipxe,175,b0:01:01",
                     "dhcp-range=::,constructor:nbl123456-br,ra-only", "enable-ra"}


def test_pxelinux_dnsmasq_conf_gives_every_client_pxelinux(tmp_path):
    boots = [line for line in _conf(tmp_path, loader=Loader.PXELINUX).splitlines()
             if line.startswith("dhcp-boot=")]
    assert boots == ["dhcp-boot=pxelinux.0"]


@pytest.mark.parametrize("loader", list(LOADER_FILES), ids=str)  # what dnsmasq serves
@pytest.mark.parametrize("tuning", [DEFAULT, TUNED], ids=lambda t: t.name)
def test_dnsmasq_accepts_the_conf(tmp_path, tuning, loader):
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(_conf(tmp_path, tuning, loader))
    proc = subprocess.run(["dnsmasq", "--test", f"--conf-file={conf}"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_ipxe_script_names_the_initrd_for_the_efi_stub():
    assert ipxe_script("http://198.18.0.1:8080") == (
        "#!ipxe\n"
        "kernel http://198.18.0.1:8080/vmlinuz initrd=initrd.img console=ttyS0 panic=-1\n"
        "initrd http://198.18.0.1:8080/initrd.img\n"
        "boot\n")


def test_pxelinux_config_boots_kernel_and_initrd_without_a_menu():
    assert pxelinux_config("console=ttyS0") == (
        "DEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.img\n"
        "  APPEND console=ttyS0\n")


def test_marker_init_prints_marker_and_powers_off():
    assert marker_init("HELLO").splitlines() == [
        "#!/bin/busybox sh", "/bin/busybox echo 'HELLO' > /dev/console",
        "/bin/busybox poweroff -f"]


def test_marker_initramfs_lists_busybox_init_and_console_node(tmp_path):
    image = marker_initramfs()
    listing = subprocess.run(["cpio", "-itv"], input=image, capture_output=True, check=True)
    rows = listing.stdout.decode().splitlines()
    names = {row.split()[-1]: row for row in rows}
    assert set(names) == {"bin", "bin/busybox", "dev", "dev/console", "init"}
    assert names["dev/console"].startswith("crw-------") and "5,   1" in names["dev/console"]
    assert names["init"].startswith("-rwxr-xr-x")


def test_marker_initramfs_without_busybox_names_the_package(tmp_path):
    with pytest.raises(LabError, match="busybox-static"):
        marker_initramfs(tmp_path / "busybox")
