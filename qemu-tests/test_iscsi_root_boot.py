"""Fast boot to an iSCSI root: QEMU -kernel/-initrd, a real tgtd with CHAP, dnsmasq's DHCP.

No PXE here: the guest gets netboot's kernel and base+client initrds directly,
so what is tested is the initramfs: NIC by MAC, udhcpc, iscsistart with CHAP
and mutual CHAP, the LUN found by target IQN + LUN, switch_root, and the one
failure line for a wrong secret. The serial log is printed when a test fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import textwrap
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from iscsi_rig import (
    Tgt,
    Vlan,
    boot,
    make_root_image,
    start_dnsmasq,
    start_report_listener,
    stop,
)

from netboot.chap import new_secret
from netboot.clientpart import build_client_part
from netboot.configfile import parse_config
from netboot.initramfs.build import Compression, build
from netboot.inventory import Client
from netboot.kernel import download, install

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and tgtd"),
]

MAC = "52:54:00:4e:42:01"
HOSTNAME = "nbvm1"
MARKER = "NETBOOT-ROOT-OK"
REPORT_PORT = 8080


@pytest.fixture(scope="module")
def vlan() -> Vlan:
    vlan = Vlan.create()
    yield vlan
    vlan.delete()


@pytest.fixture(scope="module")
def config(vlan: Vlan, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    text = textwrap.dedent(f"""\
        server:
          interface: {vlan.bridge}
          address: {vlan.server}
          http_port: {REPORT_PORT}
        dhcp:
          subnet: {IPv4Network(f"{vlan.server}/24", strict=False)}
        storage:
          state_dir: {state}
        """)
    return parse_config(text, str(state / "netboot.yaml"))


@pytest.fixture(scope="module")
def base_image(config, pytestconfig) -> Path:
    """The kernel installed and the base image built, exactly as the CLI does it."""
    deb = download("cloud-amd64", pytestconfig.cache.mkdir("netboot-kernel-deb"), print)
    install(config, print, deb=deb)
    build(config, print)
    return config.initramfs_path


@pytest.fixture
def client(config, vlan: Vlan) -> Client:
    authority = config.target.iqn_authority
    return Client(
        mac=MAC, hostname=HOSTNAME, ip=vlan.guest, image=None, lun_path=None, lun_size=24 << 20,
        initiator_iqn=f"{authority}:initiator:{HOSTNAME}",
        target_iqn=f"{authority}:target:{HOSTNAME}", chap_user=HOSTNAME,
        chap_secret=new_secret(), mutual_secret=new_secret(), created=1_700_000_000)


@pytest.fixture
def lun(request, tmp_path: Path) -> Path | None:
    """The client's LUN: a bootable root (default), ``"blank"`` (zeros) or ``"none"``."""
    kind = getattr(request, "param", "root")
    if kind == "none":
        return None
    path = tmp_path / "root.img"
    if kind == "blank":
        path.write_bytes(bytes(8 << 20))
    else:
        make_root_image(path, tmp_path)
    return path


@pytest.fixture
def tgt(vlan: Vlan, client: Client, lun: Path | None, tmp_path: Path):
    """tgtd serving ``lun`` to ``client`` (by initiator name) with CHAP and mutual CHAP."""
    tgt = Tgt.start(vlan, tmp_path / "tgtd.log")
    try:
        tgt.add_target(1, client.target_iqn, lun, client.initiator_iqn, client.chap_user,
                       client.chap_secret, client.mutual_user, client.mutual_secret)
        yield tgt
    finally:
        tgt.shutdown()


@pytest.fixture
def dhcp(vlan: Vlan, tmp_path: Path):
    proc = start_dnsmasq(vlan, MAC, tmp_path)
    yield proc
    stop(proc)


@pytest.fixture
def reports(vlan: Vlan, tmp_path: Path) -> Path:
    """The log of every HTTP request made to the server's report URL."""
    proc = start_report_listener(vlan, REPORT_PORT, tmp_path)
    yield tmp_path / "httpd.log"
    stop(proc)


@pytest.fixture
def san(tgt, dhcp, reports):
    """Everything a client needs to boot: the target, DHCP and the report listener."""
    return reports


def boot_client(config, vlan: Vlan, base_image: Path, client: Client, tmp_path: Path,
                mac_arg: str = f"netboot.mac={MAC}", monitor: tuple[str, ...] = (),
                nic: str = "virtio-net-pci"):
    """Boot ``client`` with base + client part concatenated, as iPXE would pass them."""
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(base_image.read_bytes() + build_client_part(config, client))
    result = boot(vlan, config.kernel_path, initrd, MAC, tmp_path / "serial.log", MARKER,
                  append=f"{mac_arg} netboot.onfail=halt", monitor=monitor, nic=nic)
    print(f"--- serial log ({result.seconds:.1f} s to {MARKER}) ---\n{result.log}")
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_guest_boots_from_its_iscsi_lun_with_mutual_chap(config, vlan, base_image, client,
                                                         san, tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_gzip_base_image_boots_too(config, vlan, base_image, client, san, tmp_path):
    gzip_config = replace(config, boot=replace(config.boot, initramfs=tmp_path / "gzip.img"))
    build(gzip_config, print, Compression.GZIP)
    result = boot_client(gzip_config, vlan, gzip_config.initramfs_path, client, tmp_path)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_root_gets_the_initiator_name_for_its_iscsid(config, vlan, base_image, client, san,
                                                     tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path)
    assert f"NETBOOT-HANDOFF InitiatorName={client.initiator_iqn}" in result.log


def test_init_reports_each_stage_to_the_server(config, vlan, base_image, client, san, tmp_path):
    boot_client(config, vlan, base_image, client, tmp_path)
    requests = san.read_text()
    for stage in ("initramfs", "network", "login", "root"):
        assert f"/report/{MAC}/{stage}" in requests


def test_wrong_chap_secret_gives_chap_rejected_and_leaves_lun_untouched(
        config, vlan, base_image, client, san, lun, tmp_path):
    before = digest(lun)
    result = boot_client(config, vlan, base_image, replace(client, chap_secret=new_secret()),
                         tmp_path)
    assert "FAILED at login: CHAP rejected" in result.log
    assert MARKER not in result.log
    assert digest(lun) == before


def test_wrong_mutual_secret_gives_mutual_chap_failed(config, vlan, base_image, client, san,
                                                      tmp_path):
    result = boot_client(config, vlan, base_image, replace(client, mutual_secret=new_secret()),
                         tmp_path)
    assert "FAILED at login: mutual CHAP failed" in result.log


def test_pxelinux_bootif_picks_the_nic(config, vlan, base_image, client, san, tmp_path):
    bootif = "BOOTIF=01-" + MAC.upper().replace(":", "-")
    result = boot_client(config, vlan, base_image, client, tmp_path, mac_arg=bootif)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_initiator_outside_the_acl_gives_target_not_found(config, vlan, base_image, client, san,
                                                         tmp_path):
    stranger = replace(client, initiator_iqn=f"{client.initiator_iqn}-stranger")
    result = boot_client(config, vlan, base_image, stranger, tmp_path)
    assert "FAILED at login: target not found" in result.log


def test_closed_portal_gives_target_unreachable(config, vlan, base_image, client, san, tmp_path):
    elsewhere = replace(config, target=replace(config.target, portal_port=3261))
    result = boot_client(elsewhere, vlan, base_image, client, tmp_path)
    assert "FAILED at login: target unreachable" in result.log


def test_nic_without_a_driver_in_the_image_is_named(config, vlan, base_image, client, san,
                                                   tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path, nic="rtl8139")
    assert "loading every NIC driver in the image" in result.log
    assert f"FAILED at network: no network interface has MAC {MAC}" in result.log


def test_unplugged_cable_gives_no_link(config, vlan, base_image, client, san, tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path, monitor=("set_link n0 off",))
    assert "FAILED at network: no link on eth0" in result.log


def test_no_dhcp_server_gives_no_dhcp_answer(config, vlan, base_image, client, tgt, tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path)
    assert "FAILED at network: no DHCP answer" in result.log


def test_failure_is_reported_with_its_cause(config, vlan, base_image, client, san, tmp_path):
    boot_client(config, vlan, base_image, replace(client, chap_secret=new_secret()), tmp_path)
    details = [parse_qs(urlsplit(url).query)["detail"][0]
               for url in re.findall(r'"GET (\S+) HTTP', san.read_text())
               if urlsplit(url).path == f"/report/{MAC}/failed"]
    assert [d.split(":")[:2] for d in details] == [["login", " CHAP rejected"]]



@pytest.mark.parametrize("lun", ["none"], indirect=True)
def test_target_without_the_lun_gives_lun_not_found(config, vlan, base_image, client, san,
                                                    tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path)
    assert "FAILED at root: LUN 1 not found" in result.log


@pytest.mark.parametrize("lun", ["blank"], indirect=True)
def test_lun_without_a_filesystem_gives_mount_failed(config, vlan, base_image, client, san,
                                                     tmp_path):
    result = boot_client(config, vlan, base_image, client, tmp_path)
    assert "FAILED at root: mount failed: /dev/sda as ext4" in result.log
