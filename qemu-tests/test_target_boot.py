"""A VM boots from a root LUN that netboot itself provisioned: built-in image, clone, tgt adapter.

Everything on the target side is netboot's: `image build --builtin`, `client add`
cloning it and creating the target through the tgt backend (CHAP, mutual CHAP,
ACL, discovery CHAP). The guest is QEMU with the kernel and initrds given
directly (no PXE), so what is tested is that the target serves the root and the
built-in /sbin/init runs: it prints the marker, counts boots on its root and
powers off.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from iscsi_rig import Tgt, Vlan, boot, start_dnsmasq, start_report_listener, stop

from netboot.clientpart import build_client_part
from netboot.clients import add_client
from netboot.configfile import parse_config
from netboot.images import build_builtin
from netboot.initramfs.build import build
from netboot.inventory import Client, Inventory
from netboot.kernel import download, install
from netboot.target.tgt import TgtBackend

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and tgtd"),
]

MAC = "52:54:00:4e:42:07"
HOSTNAME = "nbtarget1"
MARKER = "NETBOOT-ROOT-OK"
REPORT_PORT = 8080


@pytest.fixture(scope="module")
def vlan() -> Vlan:
    vlan = Vlan.create()
    yield vlan
    vlan.delete()


@pytest.fixture(scope="module")
def tgt(vlan: Vlan, tmp_path_factory) -> Tgt:
    """tgtd in the VLAN's namespace; netboot drives it through its control port."""
    tgt = Tgt.start(vlan, tmp_path_factory.mktemp("tgtd") / "tgtd.log")
    yield tgt
    tgt.shutdown()


@pytest.fixture(scope="module")
def config(vlan: Vlan, tgt: Tgt, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    text = textwrap.dedent(f"""\
        server:
          interface: {vlan.bridge}
          address: {vlan.server}
          http_port: {REPORT_PORT}
        dhcp:
          subnet: {IPv4Network(f"{vlan.server}/24", strict=False)}
        target:
          tgt_control_port: {tgt.control_port}
        storage:
          state_dir: {state}
        """)
    return parse_config(text, str(state / "netboot.yaml"))


@pytest.fixture(scope="module")
def base_image(config, pytestconfig) -> Path:
    deb = download("cloud-amd64", pytestconfig.cache.mkdir("netboot-kernel-deb"), print)
    install(config, print, deb=deb)
    build(config, print)
    return config.initramfs_path


@pytest.fixture(scope="module")
def client(config, vlan: Vlan, tgt: Tgt) -> Client:
    """Registered and provisioned by netboot: a clone of the built-in image and its target."""
    build_builtin(config)
    with Inventory(config.storage.database) as inventory:
        added = add_client(config, inventory, MAC, hostname=HOSTNAME, ip=vlan.guest,
                           image="builtin", size=48 << 20,
                           backend=TgtBackend(tgt.control_port, config.storage.state_dir))
    assert added.target.done, added.target
    return added.client


@pytest.fixture(scope="module")
def dhcp(vlan: Vlan, tmp_path_factory):
    work = tmp_path_factory.mktemp("dhcp")
    dnsmasq = start_dnsmasq(vlan, MAC, work)
    httpd = start_report_listener(vlan, REPORT_PORT, work)
    yield
    stop(httpd)
    stop(dnsmasq)


def boot_client(config, vlan: Vlan, base_image: Path, client: Client, tmp_path: Path,
                append: str = "netboot.onfail=halt"):
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(base_image.read_bytes() + build_client_part(config, client))
    result = boot(vlan, config.kernel_path, initrd, MAC, tmp_path / "serial.log", MARKER,
                  append=append)
    print(f"--- serial log ({result.seconds:.1f} s to {MARKER}) ---\n{result.log}")
    return result


def boot_count(lun: str) -> str:
    return subprocess.run(["debugfs", "-R", "cat /netboot-boot-count", lun],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_guest_boots_the_builtin_image_from_its_provisioned_lun(config, vlan, base_image,
                                                                client, dhcp, tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_builtin_init_counts_boots_on_its_root(config, vlan, base_image, client, dhcp,
                                               tmp_path):
    before = int(boot_count(client.lun_path) or 0)
    result = boot_client(config, vlan, base_image, client, tmp_path)
    assert f"NETBOOT-BOOT-COUNT {before + 1}" in result.log
    assert boot_count(client.lun_path) == str(before + 1)
