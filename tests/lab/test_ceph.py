"""The one-node Ceph cluster: its files and decisions (pure), then the real thing: RBD
I/O as client.netboot from the host and from a namespace, and nothing left after down,
also after a kill."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from netboot.lab import ceph
from netboot.lab.ceph import Attachment, CephError, Cluster
from tests.conftest import needs_root
from tests.support.ceph import image_name, leftovers, listening, missing
from tests.support.netlab import Lab
from tests.support.processes import dead_pid
from tests.support.waiting import eventually

DATA = Path(__file__).parent / "data"
SAMPLE = Cluster(directory=Path("/srv/netboot/lab-state/ceph"), netns="nbc0a1b2c",
                 address=IPv4Interface("198.19.254.1/24"),
                 fsid="6f1c1f5e-8f0e-4d7e-9a55-3c1f2b9d0e11")
needs_ceph = pytest.mark.skipif(missing() is not None, reason=str(missing()))


# -- pure ---------------------------------------------------------------------------------


def test_cluster_conf_matches_golden_file():
    assert ceph.cluster_conf(SAMPLE) == (DATA / "ceph-cluster.conf").read_text()


def test_client_conf_matches_golden_file():
    assert ceph.client_conf(SAMPLE) == (DATA / "ceph-client.conf").read_text()


def test_subnet_is_the_first_no_host_route_overlaps():
    routes = [IPv4Network("0.0.0.0/0"), IPv4Network("198.19.254.0/24"),
              IPv4Network("198.19.252.0/23")]
    assert ceph.choose_subnet(routes) == IPv4Network("198.19.251.0/24")


def test_no_free_subnet_is_an_error_saying_what_to_do():
    with pytest.raises(CephError, match="lab ceph down"):
        ceph.choose_subnet([IPv4Network("198.19.0.0/16")])


def test_attachment_takes_the_lowest_free_index_and_address():
    taken = Attachment(None, "nbc0a1b2c-c1", "nbc0a1b2c-a1", IPv4Interface("198.19.254.2/24"))
    cluster = replace(SAMPLE, attachments=(taken,))
    assert ceph.next_attachment(cluster, "nbt1") == Attachment(
        "nbt1", "nbc0a1b2c-c0", "nbc0a1b2c-a0", IPv4Interface("198.19.254.3/24"))


def test_a_full_storage_network_is_an_error():
    small = replace(SAMPLE, address=IPv4Interface("198.19.254.1/30"))
    first = ceph.next_attachment(small, None)
    full = replace(small, attachments=(first,))
    with pytest.raises(CephError, match="no room"):
        ceph.next_attachment(full, "nbt1")


def test_state_survives_a_round_trip_through_json():
    cluster = replace(SAMPLE, pids={"mon.a": 10}, attachments=(
        Attachment("nbt1", "nbc0a1b2c-c0", "nbc0a1b2c-a0", IPv4Interface("198.19.254.2/24")),))
    assert Cluster.from_json(json.loads(json.dumps(cluster.to_json())), SAMPLE.directory) == cluster


def test_unreadable_state_is_an_error_naming_the_file(tmp_path):
    (tmp_path / ceph.STATE_FILE).write_text("{}")
    with pytest.raises(CephError, match=str(tmp_path / ceph.STATE_FILE)):
        ceph.load(tmp_path)


def test_key_is_a_cephx_aes_key_of_16_bytes():
    raw = base64.b64decode(ceph.new_key(now=1_700_000_000))
    assert struct.unpack("<HIIH", raw[:12]) == (1, 1_700_000_000, 0, 16) and len(raw) == 28


def test_keyring_lists_each_entity_with_key_and_caps():
    text = ceph.keyring([("client.netboot", "KEY", ceph.client_caps("pool1"))])
    assert text == textwrap.dedent("""\
        [client.netboot]
        \tkey = KEY
        \tcaps mgr = "profile rbd pool=pool1"
        \tcaps mon = "profile rbd, allow command 'osd blocklist' with blocklistop=rm"
        \tcaps osd = "profile rbd pool=pool1"
        """)


@pytest.mark.skipif(shutil.which("ceph-authtool") is None, reason="ceph-common not installed")
def test_ceph_authtool_decodes_the_key_written(tmp_path):
    key = ceph.new_key()
    path = tmp_path / "keyring"
    path.write_text(ceph.keyring([("client.netboot", key, ceph.client_caps("netboot"))]))
    printed = subprocess.run(["ceph-authtool", str(path), "--name", "client.netboot",
                              "--print-key"], capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == key


def test_down_removes_what_a_killed_up_was_writing_and_keeps_the_users_files(tmp_path):
    directory = tmp_path / "cluster"
    directory.mkdir()
    ceph.state_path(directory).write_text(json.dumps(replace(SAMPLE, directory=directory)
                                                     .to_json()))
    pid = dead_pid()
    (directory / f".{ceph.ADMIN_KEYRING}.tmp-{pid}").write_bytes(b"half a key")
    (directory / f".{ceph.STATE_FILE}.tmp-{pid}").write_bytes(b"half a state")
    (directory / "notes").write_text("mine")
    assert ceph.down(directory)
    assert [p.name for p in directory.iterdir()] == ["notes"]


# -- the real cluster ---------------------------------------------------------------------

# Run with the cluster's conf and client.netboot inside a namespace: write, read back, remove.
RBD_ROUND_TRIP = """
import sys, rados, rbd
conf, client, pool, name = sys.argv[1:]
with rados.Rados(conffile=conf, rados_id=client) as cluster, cluster.open_ioctx(pool) as io:
    rbd.RBD().create(io, name, 1 << 22)
    try:
        with rbd.Image(io, name) as image:
            image.write(b"from a namespace", 1 << 20)
            print(image.read(1 << 20, 16).decode())
    finally:
        rbd.RBD().remove(io, name)
"""


def _round_trip(cluster: Cluster, name: str) -> bytes:
    """Write and read back an image as client.netboot from this process (the host)."""
    import rados  # Ceph's bindings, in the tests that need Ceph only
    import rbd

    with (rados.Rados(conffile=str(cluster.conf), rados_id=cluster.client_id) as conn,
          conn.open_ioctx(cluster.pool) as io):
        rbd.RBD().create(io, name, 1 << 22)
        try:
            with rbd.Image(io, name) as image:
                image.write(b"from the host", 4096)
                return image.read(4096, 13)
        finally:
            rbd.RBD().remove(io, name)


def _ceph_system_dirs() -> dict[str, list[str]]:
    return {d: sorted(os.listdir(d)) for d in ("/var/log/ceph", "/var/run/ceph")
            if os.path.isdir(d)}


@needs_root
@needs_ceph
def test_host_writes_and_reads_an_image_as_client_netboot(ceph_cluster):
    assert _round_trip(ceph_cluster, image_name()) == b"from the host"


@needs_root
@needs_ceph
def test_a_namespace_attached_writes_and_reads_an_image(ceph_cluster, ceph_attach, tmp_path):
    lab = Lab(tmp_path)
    try:
        netns = lab.netns("t")
        ceph_attach(netns)
        done = lab.run(netns, [sys.executable, "-c", RBD_ROUND_TRIP, str(ceph_cluster.conf),
                               ceph_cluster.client_id, ceph_cluster.pool, image_name()],
                       check=False)
    finally:
        lab.close()
    assert (done.returncode, done.stdout.strip()) == (0, "from a namespace"), done.stderr


@needs_root
@needs_ceph
def test_client_netboot_may_not_touch_other_pools(ceph_cluster):
    import rados  # Ceph's bindings, in the tests that need Ceph only

    with (rados.Rados(conffile=str(ceph_cluster.conf), rados_id=ceph_cluster.client_id) as conn,
          pytest.raises(rados.PermissionError)):
        conn.create_pool(image_name("pool"))


@needs_root
@needs_ceph
def test_daemons_listen_on_the_cluster_address_only(ceph_cluster):
    addresses = listening(ceph_cluster.netns)
    assert addresses and all(a.startswith(f"{ceph_cluster.address.ip}:") for a in addresses)
    assert not [a for a in listening(None) if str(ceph_cluster.address.ip) in a]


@needs_root
@needs_ceph
def test_up_use_down_three_times_leaves_nothing(tmp_path):
    system_dirs = _ceph_system_dirs()
    for round_ in range(3):
        cluster = ceph.up(tmp_path / f"cluster{round_}", say=lambda _: None)
        try:
            ceph.attach(cluster, None)
            assert _round_trip(cluster, image_name()) == b"from the host"
        finally:
            assert ceph.down(cluster.directory)
        assert leftovers(cluster) == []
    assert _ceph_system_dirs() == system_dirs  # nothing in /var/log/ceph or /var/run/ceph


@needs_root
@needs_ceph
@pytest.mark.parametrize("stage", ["state recorded", "mon started", "osd started"])
def test_down_after_up_is_killed_leaves_nothing(tmp_path, stage):
    directory = tmp_path / "cluster"
    up = subprocess.Popen([sys.executable, "-m", "netboot", "lab", "ceph", "up", "--dir",
                           str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    daemon = {"state recorded": None, "mon started": "mon.a", "osd started": "osd.0"}[stage]

    def reached() -> bool:
        try:
            cluster = ceph.load(directory)
        except CephError:  # read while being replaced: not there yet
            return False
        return cluster is not None and (daemon is None or daemon in cluster.pids)

    try:
        assert eventually(reached, 60), f"up never reached '{stage}'"
    finally:  # the command and the tool it waits on (ip, ceph-mon --mkfs), as a lost session
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    cluster = ceph.load(directory)
    assert ceph.down(directory)
    assert leftovers(cluster) == []


@needs_root
@needs_ceph
def test_down_after_the_daemons_are_killed_leaves_nothing(tmp_path):
    cluster = ceph.up(tmp_path / "cluster", say=lambda _: None)
    try:
        for pid in cluster.pids.values():
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    finally:
        assert ceph.down(cluster.directory)
    assert leftovers(cluster) == []
