"""`netboot lab` pieces on their own: config, state, messages, cleanup after a failed up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from netboot.arch import Arch
from netboot.config import RbdConfig, StorageKind
from netboot.configfile import load_config
from netboot.errors import ConfigError
from netboot.lab import ceph, lab, topology
from netboot.lab.ceph import Attachment, CephError
from netboot.lab.topology import LabError
from netboot.lab.vm import Accel, Firmware
from tests.conftest import needs_root
from tests.support.ceph import leftovers, missing
from tests.support.waiting import eventually

CLUSTER = ceph.Cluster(directory=Path("/srv/ceph"), netns="nbc0a1b2c",
                       address=IPv4Interface("198.19.254.1/24"),
                       fsid="6f1c1f5e-8f0e-4d7e-9a55-3c1f2b9d0e11", pool="roots")
HOST = Attachment(None, "nbc0a1b2c-c0", "nbc0a1b2c-a0", IPv4Interface("198.19.254.2/24"))
needs_ceph = pytest.mark.skipif(missing() is not None, reason=str(missing()))


def _lab_namespaces() -> set[str]:
    return {n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
            .stdout.split() if n.startswith(topology.NAME_PREFIX)}


def test_lab_config_puts_the_server_on_the_bridge_and_state_in_the_lab(tmp_path):
    topo = topology.plan(tmp_path, 2)
    config = load_config(lab.write_config(topo, 4242, "pxelinux", "2G", "cloud-amd64",
                                          tmp_path / "cache"))
    assert config.server.interface == topo.bridge
    assert str(config.server.address) == "198.18.0.1"
    assert str(config.dhcp.subnet) == "198.18.0.0/24"
    assert config.storage.state_dir == tmp_path / "state"
    assert config.storage.cache == tmp_path / "cache"
    assert config.target.tgt_control_port == 4242
    assert config.boot.loader == "pxelinux"
    assert config.storage.default_lun_size == 2 * 1024**3
    assert config.target.discovery_auth is True


def test_lab_config_can_leave_discovery_without_chap(tmp_path):
    topo = topology.plan(tmp_path, 1)
    config = load_config(lab.write_config(topo, 4242, "ipxe", "1G", "cloud-amd64",
                                          tmp_path / "cache", discovery_auth=False))
    assert config.target.discovery_auth is False


def test_lab_config_on_ceph_keeps_images_and_roots_in_the_clusters_pool(tmp_path):
    topo = topology.plan(tmp_path, 1)
    rbd = lab.rbd_config(CLUSTER)
    config = load_config(lab.write_config(topo, 4242, "ipxe", "1G", "cloud-amd64",
                                          tmp_path / "cache", rbd=rbd))
    assert config.storage.backend is StorageKind.RBD
    assert config.storage.rbd == RbdConfig(pool="roots", ceph_conf=Path("/srv/ceph/ceph.conf"),
                                           client_id="netboot")


def test_lab_config_is_readable_by_serves_network_part_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = lab.write_config(topology.plan(tmp_path, 1), 4242, "ipxe", "1G", "cloud-amd64",
                                tmp_path / "cache")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_lab_on_ceph_without_a_cluster_makes_its_own_and_attaches_its_namespace_and_host():
    assert lab.plan_ceph(Path("/lab/ceph"), None, "nbl000001") == lab.LabCeph(
        "/lab/ceph", made=True, attached=("nbl000001", None))


def test_lab_on_a_given_cluster_attaches_its_namespace_and_the_host_not_attached_yet():
    assert lab.plan_ceph(Path("/lab/ceph"), CLUSTER, "nbl000001") == lab.LabCeph(
        "/srv/ceph", made=False, attached=("nbl000001", None))


def test_lab_on_a_given_cluster_leaves_the_hosts_attachment_to_whoever_made_it():
    given = replace(CLUSTER, attachments=(HOST,))
    assert lab.plan_ceph(Path("/lab/ceph"), given, "nbl000001") == lab.LabCeph(
        "/srv/ceph", made=False, attached=("nbl000001",))


def test_lab_state_on_ceph_survives_a_json_round_trip(tmp_path):
    state = lab.LabState(str(tmp_path / "netboot.yaml"), (), "tcg", 4242, {},
                         lab.LabCeph(str(tmp_path / "ceph"), True, ("nbl000001", None)))
    lab._save(tmp_path, state)
    assert lab.load_state(tmp_path) == state


def test_a_ceph_dir_for_a_lab_on_files_is_refused(tmp_path):
    with pytest.raises(LabError, match="storage ceph"):
        lab.up(tmp_path, 1, ceph_dir=tmp_path / "ceph", say=lambda _: None)


def test_a_ceph_dir_without_a_cluster_is_refused_with_how_to_start_one(tmp_path):
    with pytest.raises(LabError, match="netboot lab ceph up --dir"):
        lab.up(tmp_path / "lab", 1, storage=lab.LabStorage.CEPH, ceph_dir=tmp_path / "none",
               say=lambda _: None)


def test_lab_state_survives_a_json_round_trip(tmp_path):
    state = lab.LabState(str(tmp_path / "netboot.yaml"),
                         (lab.LabClient("lab-01", "52:54:00:00:00:01"),), "tcg", 4242,
                         {"tgtd": 10, "serve": 11})
    lab._save(tmp_path, state)
    assert lab.load_state(tmp_path) == state


def test_boot_without_a_lab_says_how_to_make_one(tmp_path):
    with pytest.raises(LabError, match="netboot lab up"):
        lab.boot(tmp_path)


def test_down_without_a_lab_reports_nothing_removed(tmp_path):
    assert lab.down(tmp_path) is False


def test_cpu_seconds_of_a_live_process_and_of_none():
    assert lab.cpu_seconds(os.getpid()) > 0
    assert lab.cpu_seconds(2**22 + 1) is None


@needs_root
def test_failed_up_leaves_no_vlan_and_no_state(tmp_path):
    before = _lab_namespaces()
    with pytest.raises(ConfigError, match="default_lun_size"):
        lab.up(tmp_path, 1, lun_size="12Q", say=lambda _: None)
    assert _lab_namespaces() == before
    assert not (tmp_path / lab.STATE_FILE).exists()
    assert topology.load(tmp_path) is None


def test_lab_config_on_a_wider_vlan_has_its_subnet(tmp_path):
    topo = topology.plan(tmp_path, 0, IPv4Interface("198.18.0.1/22"))
    config = load_config(lab.write_config(topo, 4242, "ipxe", "1G", "cloud-amd64",
                                          tmp_path / "cache"))
    assert str(config.dhcp.subnet) == "198.18.0.0/22"


@needs_root
@needs_ceph
def test_failed_up_on_ceph_takes_its_own_cluster_down(tmp_path):
    seen: list[ceph.Cluster] = []  # the cluster as up reports its steps

    def say(_: str) -> None:
        if (cluster := ceph.load(tmp_path / lab.CEPH_DIR)) is not None:
            seen.append(cluster)

    with pytest.raises(ConfigError, match="default_lun_size"):
        lab.up(tmp_path, 1, lun_size="12Q", accel=Accel.TCG, storage=lab.LabStorage.CEPH,
               say=say)
    assert seen and leftovers(seen[-1]) == []
    assert not (tmp_path / lab.STATE_FILE).exists()


@needs_root
@needs_ceph
def test_failed_up_on_a_given_cluster_only_detaches_the_lab(tmp_path, ceph_cluster):
    before = ceph.load(ceph_cluster.directory)
    with pytest.raises(ConfigError, match="default_lun_size"):
        lab.up(tmp_path, 1, lun_size="12Q", accel=Accel.TCG, storage=lab.LabStorage.CEPH,
               ceph_dir=ceph_cluster.directory, say=lambda _: None)
    assert ceph.load(ceph_cluster.directory) == before
    assert ceph.running(ceph_cluster) == dict.fromkeys(ceph_cluster.pids, True)


@needs_root
@needs_ceph
def test_down_after_up_on_ceph_is_killed_leaves_nothing(tmp_path):
    """Killed once its cluster is up and attached: lab down finds it in lab.json."""
    up = subprocess.Popen([sys.executable, "-m", "netboot", "lab", "up", "--dir", str(tmp_path),
                           "--accel", "tcg", "--storage", "ceph"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def attached() -> bool:
        try:
            cluster = ceph.load(tmp_path / lab.CEPH_DIR)
        except CephError:  # read while being replaced
            return False
        return cluster is not None and len(cluster.attachments) == 2

    try:
        # a new cluster takes 20-60 s here, several times that on a loaded machine
        assert eventually(attached, 240), "lab up never attached its cluster"
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    cluster = ceph.load(tmp_path / lab.CEPH_DIR)
    vlan = topology.load(tmp_path)
    assert cluster is not None and vlan is not None
    assert lab.down(tmp_path)
    assert leftovers(cluster) == []
    assert vlan.netns not in _lab_namespaces()


def test_a_labs_firmware_defaults_to_its_clients_architecture_and_must_suit_it():
    assert lab.firmware_for(Arch.AMD64, None) is Firmware.BIOS
    assert lab.firmware_for(Arch.ARM64, None) is Firmware.AARCH64_UEFI
    assert lab.firmware_for(Arch.AMD64, Firmware.UEFI) is Firmware.UEFI
    with pytest.raises(LabError, match="clients are arm64: firmware uefi does not boot them"):
        lab.firmware_for(Arch.ARM64, Firmware.UEFI)
    with pytest.raises(LabError, match="clients are amd64"):
        lab.firmware_for(Arch.AMD64, Firmware.AARCH64_UEFI)
