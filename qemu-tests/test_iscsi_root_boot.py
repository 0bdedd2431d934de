"""Fast boot to an iSCSI root: QEMU -kernel/-initrd, a real tgtd with CHAP, dnsmasq's DHCP,
on the lab's boot VLAN and VM runner; the target made by netboot's TgtBackend.

No PXE here: the guest gets netboot's kernel and base+client initrds directly,
so what is tested is the initramfs: NIC by MAC, udhcpc, iscsistart with CHAP
and mutual CHAP, the LUN found by target IQN + LUN, a root smaller than its LUN
grown online, switch_root, and the one failure line for a wrong secret. The
serial log is printed when a test fails.
"""

# ruff: noqa: F811  (fixtures imported from direct_boot are requested by name)
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from direct_boot import (  # noqa: F401  (fixtures)
    MARKER,
    base_image,
    boot_client,
    dhcp,
    guest_address,
    make_root_image,
    report_listener,
    tgtd,
    vlan,
    vlan_config,
)

from netboot.initramfs.build import Compression, build
from netboot.inventory.clients import Client
from netboot.provisioning.chap import new_secret
from netboot.storage.images import BUILTIN_SIZE, build_builtin
from netboot.target import Account, DesiredState, Lun, TargetSpec
from netboot.target.tgt import TgtBackend

MAC = "52:54:00:4e:42:01"
HOSTNAME = "nbvm1"
GROWN_LUN_SIZE = 64 << 20  # the built-in image's LUN, grown past its 32 MiB filesystem


@pytest.fixture(scope="module")
def config(vlan, tmp_path_factory):
    return vlan_config(vlan, tmp_path_factory.mktemp("state"))


@pytest.fixture
def client(config, vlan) -> Client:
    authority = config.target.iqn_authority
    return Client(
        mac=MAC, hostname=HOSTNAME, ip=guest_address(vlan), image=None, lun_path=None,
        lun_size=24 << 20, initiator_iqn=f"{authority}:initiator:{HOSTNAME}",
        target_iqn=f"{authority}:target:{HOSTNAME}", chap_user=HOSTNAME,
        chap_secret=new_secret(), mutual_secret=new_secret(), created=1_700_000_000)


@pytest.fixture(scope="module")
def builtin_image(config) -> Path:
    """The built-in image (``netboot image build builtin --builtin``) in the module's store."""
    return build_builtin(config).path


@pytest.fixture
def lun(request, tmp_path: Path) -> Path | None:
    """The client's LUN: a bootable root (default), ``"blank"`` (zeros), ``"none"`` or
    ``"grown"``: the built-in image on a larger LUN, as ``rbd resize`` leaves a clone."""
    kind = getattr(request, "param", "root")
    if kind == "none":
        return None
    path = tmp_path / "root.img"
    if kind == "blank":
        path.write_bytes(bytes(8 << 20))
    elif kind == "grown":
        shutil.copyfile(request.getfixturevalue("builtin_image"), path)
        os.truncate(path, GROWN_LUN_SIZE)
    else:
        make_root_image(path, tmp_path)
    return path


@pytest.fixture
def tgt(vlan, client: Client, lun: Path | None, tmp_path: Path):
    """tgtd serving ``lun`` to ``client`` (by initiator name) with CHAP and mutual CHAP.

    The target is made by netboot's TgtBackend; with no LUN it has only its controller.
    """
    with tgtd(vlan, tmp_path / "tgtd") as control_port:
        spec = TargetSpec(client.target_iqn, client.mac,
                          (Lun(1, str(lun)),) if lun is not None else (),
                          (client.initiator_iqn,), Account(client.chap_user, client.chap_secret),
                          Account(client.mutual_user, client.mutual_secret))
        desired = DesiredState(prefix=client.target_iqn, targets=(spec,), discovery=())
        outcome = TgtBackend(control_port, tmp_path / "tgtd").apply(desired)
        assert not outcome.failed, outcome.failed
        yield control_port


@pytest.fixture
def reports(vlan, tmp_path: Path):
    """The log of every HTTP request made to the server's report URL."""
    with report_listener(vlan, tmp_path / "httpd") as log:
        yield log


@pytest.fixture
def san(tgt, vlan, reports, tmp_path: Path):
    """Everything a client needs to boot: the target, DHCP and the report listener."""
    with dhcp(vlan, MAC, tmp_path / "dhcp"):
        yield reports


@pytest.fixture
def boot(vms, vlan, base_image: Path, tmp_path: Path):
    """``boot(config, client, **options)``: one direct boot of the guest, base image built."""
    def run(config, client: Client, base: Path = base_image, **options):
        return boot_client(vms, vlan, config, base, client, tmp_path, **options)
    return run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_guest_boots_from_its_iscsi_lun_with_mutual_chap(config, client, san, boot):
    result = boot(config, client)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_gzip_base_image_boots_too(config, client, san, boot, tmp_path):
    gzip_config = replace(config, boot=replace(config.boot, initramfs=tmp_path / "gzip.img"))
    build(gzip_config, print, Compression.GZIP)
    result = boot(gzip_config, client, base=gzip_config.initramfs_path)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_root_gets_the_initiator_name_for_its_iscsid(config, client, san, boot):
    result = boot(config, client)
    assert f"NETBOOT-HANDOFF InitiatorName={client.initiator_iqn}" in result.log


def test_init_reports_each_stage_to_the_server(config, client, san, boot):
    boot(config, client)
    requests = san.read_text()
    for stage in ("initramfs", "network", "login", "root"):
        assert f"/report/{MAC}/{stage}" in requests


def test_wrong_chap_secret_gives_chap_rejected_and_leaves_lun_untouched(config, client, san,
                                                                        lun, boot):
    before = digest(lun)
    result = boot(config, replace(client, chap_secret=new_secret()))
    assert "FAILED at login: CHAP rejected" in result.log
    assert MARKER not in result.log
    assert digest(lun) == before


def test_wrong_mutual_secret_gives_mutual_chap_failed(config, client, san, boot):
    result = boot(config, replace(client, mutual_secret=new_secret()))
    assert "FAILED at login: mutual CHAP failed" in result.log


def test_pxelinux_bootif_picks_the_nic(config, client, san, boot):
    bootif = "BOOTIF=01-" + MAC.upper().replace(":", "-")
    result = boot(config, client, mac_arg=bootif)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_initiator_outside_the_acl_gives_target_not_found(config, client, san, boot):
    stranger = replace(client, initiator_iqn=f"{client.initiator_iqn}-stranger")
    result = boot(config, stranger)
    assert "FAILED at login: target not found" in result.log


def test_closed_portal_gives_target_unreachable(config, client, san, boot):
    elsewhere = replace(config, target=replace(config.target, portal_port=3261))
    result = boot(elsewhere, client)
    assert "FAILED at login: target unreachable" in result.log


def test_nic_without_a_driver_in_the_image_is_named(config, client, san, boot):
    result = boot(config, client, nic="rtl8139")
    assert "loading every NIC driver in the image" in result.log
    assert f"FAILED at network: no network interface has MAC {MAC}" in result.log


def test_unplugged_cable_gives_no_link(config, client, san, boot):
    result = boot(config, client, link=False)
    assert "FAILED at network: no link on eth0" in result.log


def test_no_dhcp_server_gives_no_dhcp_answer(config, client, tgt, boot):
    result = boot(config, client)
    assert "FAILED at network: no DHCP answer" in result.log


def test_failure_is_reported_with_its_cause(config, client, san, boot):
    boot(config, replace(client, chap_secret=new_secret()))
    details = [parse_qs(urlsplit(url).query)["detail"][0]
               for url in re.findall(r'"GET (\S+) HTTP', san.read_text())
               if urlsplit(url).path == f"/report/{MAC}/failed"]
    assert [d.split(":")[:2] for d in details] == [["login", " CHAP rejected"]]


@pytest.mark.parametrize("lun", ["none"], indirect=True)
def test_target_without_the_lun_gives_lun_not_found(config, client, san, boot):
    result = boot(config, client)
    assert "FAILED at root: LUN 1 not found" in result.log


@pytest.mark.parametrize("lun", ["blank"], indirect=True)
def test_lun_without_a_filesystem_gives_mount_failed(config, client, san, boot):
    result = boot(config, client)
    assert "FAILED at root: mount failed: /dev/sda as ext4" in result.log


def ext_size(image: Path) -> int:
    """Bytes the ext4 filesystem in ``image`` spans (block count * block size, dumpe2fs -h)."""
    header = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True,
                            check=True).stdout
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    return int(fields["Block count"]) * int(fields["Block size"])


@pytest.mark.parametrize("lun", ["grown"], indirect=True)
def test_root_on_a_larger_lun_is_grown_to_fill_it(config, client, san, lun, boot):
    assert ext_size(lun) == BUILTIN_SIZE < lun.stat().st_size
    result = boot(config, client)
    assert f"{MARKER} {HOSTNAME}" in result.log
    assert (f"grew the root filesystem on /dev/sda from {BUILTIN_SIZE >> 20} MiB "
            f"to {GROWN_LUN_SIZE >> 20} MiB") in result.log
    assert ext_size(lun) == lun.stat().st_size == GROWN_LUN_SIZE


def test_root_that_fills_its_lun_is_left_alone(config, client, san, boot):
    result = boot(config, client)
    assert f"{MARKER} {HOSTNAME}" in result.log
    assert "grew the root filesystem" not in result.log
    assert "not growing" not in result.log and "could not grow" not in result.log
