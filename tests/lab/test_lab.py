"""`netboot lab` pieces on their own: config, state, messages, cleanup after a failed up."""

from __future__ import annotations

import os
import subprocess
from ipaddress import IPv4Interface

import pytest

from netboot.configfile import load_config
from netboot.errors import ConfigError
from netboot.lab import lab, topology
from netboot.lab.topology import LabError
from tests.conftest import needs_root


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
