"""Each client's boot loader files rendered from the templates, checked against golden copies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from netboot.arch import Arch
from netboot.boot import scripts
from netboot.boot.sanboot import render_sanboot_script
from netboot.configfile import parse_config
from netboot.inventory.clients import BootMethod
from tests.support.bootserving import sample_client

GOLDEN = Path(__file__).parent / "golden"
CONFIG = parse_config("server: {address: 198.18.0.1}\ndhcp: {subnet: 198.18.0.0/24}\n"
                      "boot: {kernel_args: 'quiet loglevel=4', onfail: shell}\n")
CLIENT = sample_client("198.18.0.10")
UNKNOWN = "52:54:00:ab:cd:ef"
PART_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(("golden", "rendered"), [
    ("boot.ipxe", lambda: scripts.ipxe_script(CONFIG, CLIENT, PART_TOKEN)),
    ("pxelinux.cfg", lambda: scripts.pxelinux_config(CONFIG, CLIENT, PART_TOKEN)),
    ("boot.by-address.ipxe", lambda: scripts.ipxe_script(CONFIG, CLIENT)),
    ("pxelinux.by-address.cfg", lambda: scripts.pxelinux_config(CONFIG, CLIENT)),
    ("unregistered.ipxe", lambda: scripts.unregistered_ipxe(CONFIG, UNKNOWN)),
    ("unregistered.pxelinux", lambda: scripts.unregistered_pxelinux(UNKNOWN)),
    ("grub.cfg", scripts.grub_config),
    ("grub-client.cfg", lambda: scripts.grub_client_config(CONFIG, CLIENT, PART_TOKEN)),
    ("grub-client.by-address.cfg", lambda: scripts.grub_client_config(CONFIG, CLIENT)),
    ("grub-client.arm64.cfg",
     lambda: scripts.grub_client_config(CONFIG, CLIENT, PART_TOKEN, Arch.ARM64)),
    ("unregistered.grub", lambda: scripts.unregistered_grub(UNKNOWN)),
])
def test_rendered_file_matches_golden(golden: str, rendered):
    assert rendered() == (GOLDEN / golden).read_text()


def _kernel_line(script: str) -> list[str]:
    return next(line for line in script.splitlines() if line.startswith("kernel ")).split()


def test_ipxe_kernel_line_names_each_initrd_for_the_efi_stub():
    words = _kernel_line(scripts.ipxe_script(CONFIG, CLIENT))
    assert words[1] == "http://198.18.0.1:8080/boot/vmlinuz"
    assert [w for w in words if w.startswith("initrd=")] == ["initrd=initramfs.img",
                                                             "initrd=client.img"]
    script = scripts.ipxe_script(CONFIG, CLIENT)
    assert "initrd --name initramfs.img http://198.18.0.1:8080/boot/initramfs.img" in script
    assert (f"initrd --name client.img http://198.18.0.1:8080/clients/{CLIENT.mac}/client.img"
            in script)


def test_ipxe_kernel_arguments_carry_mac_console_config_args_and_onfail():
    words = _kernel_line(scripts.ipxe_script(CONFIG, CLIENT))
    for arg in (f"netboot.mac={CLIENT.mac}", "console=ttyS0", "quiet", "loglevel=4",
                "netboot.onfail=shell"):
        assert arg in words


def test_pxelinux_config_loads_both_initrds_and_appends_bootif():
    lines = [x.strip() for x in scripts.pxelinux_config(CONFIG, CLIENT).splitlines()]
    assert "KERNEL vmlinuz" in lines
    assert "INITRD initramfs.img,clients/52-54-00-12-34-56/client.img" in lines
    assert "IPAPPEND 2" in lines


def test_every_loader_passes_the_same_kernel_arguments_after_its_own():
    common = scripts.kernel_args(CONFIG)
    assert common == "console=ttyS0 quiet loglevel=4 netboot.onfail=shell"
    grub = next(line for line in scripts.grub_client_config(CONFIG, CLIENT).splitlines()
                if line.startswith("linux "))
    pxelinux = next(line.strip() for line in scripts.pxelinux_config(CONFIG, CLIENT).splitlines()
                    if line.strip().startswith("APPEND "))
    ipxe = " ".join(_kernel_line(scripts.ipxe_script(CONFIG, CLIENT)))
    assert ipxe.endswith(f" {common} || goto failed")
    assert grub == f"linux /boot/vmlinuz netboot.mac={CLIENT.mac} {common}"
    assert pxelinux == f"APPEND {common}"


def test_grub_config_loads_both_initrds_in_one_command():
    lines = scripts.grub_client_config(CONFIG, CLIENT, PART_TOKEN).splitlines()
    assert f"initrd /boot/initramfs.img /clients/{CLIENT.mac}/{PART_TOKEN}/client.img" in lines


def test_no_secret_is_in_any_boot_loader_file():
    texts = [scripts.ipxe_script(CONFIG, CLIENT), scripts.pxelinux_config(CONFIG, CLIENT),
             scripts.grub_client_config(CONFIG, CLIENT)]
    assert not any(CLIENT.chap_secret in t or CLIENT.mutual_secret in t for t in texts)


def test_ipxe_script_of_a_sanboot_client_is_its_sanboot_script():
    client = dataclasses.replace(CLIENT, boot_method=BootMethod.SANBOOT)
    assert scripts.ipxe_script(CONFIG, client) == render_sanboot_script(CONFIG, client)
