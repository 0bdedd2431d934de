"""The lab's boot VLAN: made in a namespace, gone afterwards whatever happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from ipaddress import IPv4Interface

import pytest

from netboot.host import iproute
from netboot.lab import topology
from netboot.lab.topology import LabError, Terminated
from tests.conftest import needs_root

pytestmark = needs_root


def _gone(topo: topology.Topology) -> bool:
    return topo.netns not in iproute.netns_names() and topology.load(topo.lab_dir) is None


def _lab_namespaces() -> set[str]:
    """Lab namespaces only: other tests on this machine make namespaces of their own."""
    return {n for n in iproute.netns_names() if n.startswith(topology.NAME_PREFIX)}


@pytest.fixture
def lab_dir(tmp_path):
    """A lab dir whose VLAN, if a test leaves one, is removed."""
    yield tmp_path
    topology.down(tmp_path)


def test_vlan_has_bridge_with_server_address_and_taps_on_it(lab_dir):
    with topology.boot_vlan(lab_dir, taps=2) as topo:
        assert iproute.ipv4_addresses(topo.bridge, topo.netns) == [IPv4Interface("198.18.0.1/24")]
        ports = json.loads(iproute.ip("-j", "link", "show", "master", topo.bridge,
                                      netns=topo.netns))
        assert sorted(p["ifname"] for p in ports) == list(topo.taps)


def test_names_share_one_short_random_prefix(lab_dir):
    first = topology.plan(lab_dir, 100)
    second = topology.plan(lab_dir, 1)
    assert first.netns != second.netns
    assert all(name.startswith(first.netns) and len(name) <= 15
               for name in (first.bridge, *first.taps))


def test_vlan_and_state_are_gone_after_the_block(lab_dir):
    with topology.boot_vlan(lab_dir, taps=1) as topo:
        assert topology.load(lab_dir) == topo
    assert _gone(topo)


def test_vlan_is_gone_after_an_error_in_the_block(lab_dir):
    with pytest.raises(RuntimeError), topology.boot_vlan(lab_dir, taps=1) as topo:
        raise RuntimeError("boom")
    assert _gone(topo)


def test_sigterm_unwinds_and_removes_the_vlan(lab_dir):
    with pytest.raises(Terminated), topology.boot_vlan(lab_dir, taps=1) as topo:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # let the handler run here, inside the block
    assert _gone(topo)


def test_ctrl_c_removes_the_vlan_whatever_sigint_handler_was_set(lab_dir):
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # as serve leaves it
    try:
        with pytest.raises(KeyboardInterrupt), topology.boot_vlan(lab_dir, taps=1) as topo:
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert _gone(topo)


def test_failed_creation_leaves_nothing(lab_dir, monkeypatch):
    def broken_tap(name, netns=None):
        raise LabError("no taps today")

    monkeypatch.setattr(iproute, "add_tap", broken_tap)
    before = _lab_namespaces()
    with pytest.raises(LabError, match="no taps today"):
        topology.create(lab_dir, taps=1)
    assert _lab_namespaces() == before
    assert topology.load(lab_dir) is None


def test_down_removes_a_crashed_runs_vlan_and_its_processes(lab_dir, request):
    topo = topology.create(lab_dir, taps=1)  # a run that never cleaned up
    sleeper = subprocess.Popen(topo.argv(["sleep", "300"]))
    request.addfinalizer(sleeper.kill)
    deadline = time.monotonic() + 10
    while sleeper.pid not in iproute.netns_pids(topo.netns) and time.monotonic() < deadline:
        time.sleep(0.05)  # until `ip netns exec` has entered the namespace
    assert topology.down(lab_dir) == topo
    assert sleeper.wait(10) == -signal.SIGTERM
    assert _gone(topo)


def test_down_without_a_lab_does_nothing(lab_dir):
    assert topology.down(lab_dir) is None


def test_second_lab_in_the_same_dir_is_refused(lab_dir):
    with topology.boot_vlan(lab_dir, taps=0), pytest.raises(LabError, match="lab down"):
        topology.create(lab_dir, taps=0)
