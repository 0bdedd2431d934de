"""The floating portal between two server namespaces on one bridge, with real keepalived,
tgtd + tgt-rbd on the session's Ceph cluster, and QEMU's iSCSI driver as the client:
server A is power-cut, B fences it and takes the address, the client writes on."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import rados
import rbd

from netboot.config import Config
from netboot.host import iproute
from netboot.lab import ceph
from netboot.storage.location import Store
from netboot.storage.rbdstore import NO_CACHE
from netboot.target.failover.keepalived import files, pids
from netboot.target.failover.portal import floating_address, holding
from netboot.target.model import Account, DesiredState, Lun, TargetSpec
from netboot.target.tgt import TgtBackend
from netboot.target.tgtd import start_tgtd, tgtd_pid
from tests.conftest import needs_root
from tests.support.ceph import image_name
from tests.support.failover import AUTHORITY, PORTAL, clean_up, server_config, server_states, status
from tests.support.netlab import Lab
from tests.support.waiting import eventually

pytestmark = needs_root

IQN = f"{AUTHORITY}:target:portal"
INITIATOR = f"{AUTHORITY}:initiator:portal"
ACCOUNT = Account("portal", "portal-secret-1234")
MIB = 1 << 20


def qemu_io(netns: str, command: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
    """One qemu-io command through the floating portal, logging in afresh, from ``netns``."""
    opts = (f"driver=iscsi,transport=tcp,portal={PORTAL}:3260,target={IQN},lun=1,"
            f"user={ACCOUNT.user},password={ACCOUNT.secret},initiator-name={INITIATOR}")
    argv = iproute.in_netns(netns, ["qemu-io", "--image-opts", opts, "-c", command])
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, -1, "", "timed out")


def written(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode == 0 and "wrote" in done.stdout and "error" not in done.stdout


def vpd_serial(netns: str) -> str:
    url = f"iscsi://{ACCOUNT.user}%{ACCOUNT.secret}@{PORTAL}/{IQN}/1"
    return subprocess.run(iproute.in_netns(netns, ["iscsi-inq", "-i", INITIATOR, "-e", "1",
                                                    "-c", "0x80", url]),
                          capture_output=True, text=True, timeout=30, check=True).stdout


@pytest.fixture
def rbd_image(ceph_cluster: ceph.Cluster):
    name = image_name("portal")
    with rados.Rados(conffile=str(ceph_cluster.conf), rados_id=ceph_cluster.client_id) as c, \
            c.open_ioctx(ceph_cluster.pool) as io:
        rbd.RBD().create(io, name, 64 * MIB)
        with rbd.Image(io, name) as image:
            image.metadata_set(*NO_CACHE)
        yield f"{ceph_cluster.pool}/{name}"
        for _ in range(100):  # the fenced server's watch goes with the blocklist
            try:
                rbd.RBD().remove(io, name)
                break
            except rbd.ImageBusy:
                time.sleep(0.2)


def test_a_power_cut_moves_the_portal_and_the_client_writes_on(
        tmp_path: Path, ceph_cluster: ceph.Cluster, ceph_attach, rbd_image: str) -> None:
    lab = Lab(tmp_path)
    configs: list[Config] = []
    storage: dict[str, IPv4Address] = {}
    try:
        a, b, client = lab.netns("a"), lab.netns("b"), lab.netns("c")
        links = lab.switch((a, "198.18.40.2/24", None), (b, "198.18.40.3/24", None),
                           (client, "198.18.40.9/24", None))
        storage.update({a: ceph_attach(a).ip, b: ceph_attach(b).ip})
        router_id = random.randint(1, 255)
        for ns, address, priority, peer in ((a, "198.18.40.2", 150, b),
                                            (b, "198.18.40.3", 100, a)):
            config = server_config(tmp_path / f"{ns}.yaml", links[ns], address, ceph_cluster,
                                   priority=priority, router_id=router_id, peer=storage[peer])
            configs.append(config)
            port = config.target.tgt_control_port
            lab.tgtd_ports.add(port)
            # as serve will: the portal prepared first (it lifts a fence the first master
            # put on this server), then tgtd, bound to the floating address only
            lab.spawn(ns, [sys.executable, "-m", "netboot", "--config", str(config.source),
                           "target", "portal", "run"], tmp_path / f"{ns}-keepalived.log")
            assert eventually(lambda c=config: pids(files(c)) != [], 15), (
                (tmp_path / f"{ns}-keepalived.log").read_text())
            start_tgtd(port, config.portal, netns=ns)
            backend = TgtBackend(port, config.storage.state_dir,
                                 f"conf={ceph_cluster.conf};id={ceph_cluster.client_id}")
            outcome = backend.apply(DesiredState(AUTHORITY, (TargetSpec(
                IQN, "52:54:00:00:00:01", (Lun(1, rbd_image, Store.RBD),), (INITIATOR,),
                ACCOUNT),)))
            assert not outcome.failed, outcome.failed
            if ns == a:  # A first: it becomes master alone (nopreempt keeps it there)
                assert eventually(lambda c=config: holding(c), 30), (
                    (tmp_path / f"{a}-keepalived.log").read_text())
        config_a, config_b = configs
        vip = floating_address(config_a)
        time.sleep(3)  # B has seen A's adverts and stays backup
        assert holding(config_a) and not holding(config_b)

        assert written(qemu_io(client, "write -P 0xa5 0 1M", timeout=30))
        serial = vpd_serial(client)

        cut = time.monotonic()
        iproute.ip("link", "delete", links[a], netns=a)
        for pid in [*pids(files(config_a)), tgtd_pid(config_a.target.tgt_control_port)]:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        moved: list[float] = []
        watch = threading.Thread(target=lambda: moved.append(
            time.monotonic() - cut if eventually(
                lambda: vip in iproute.ipv4_addresses(links[b], netns=b), 30) else -1),
            daemon=True)
        watch.start()
        first_write = None
        while time.monotonic() - cut < 30 and first_write is None:
            if written(qemu_io(client, "write -P 0x5a 1M 1M", timeout=2)):
                first_write = time.monotonic() - cut
        watch.join()
        print(f"\nfailover: address on B at +{moved[0]:.2f} s, first completed write at "
              f"+{first_write or -1:.2f} s after the cut")
        assert first_write is not None, (tmp_path / f"{b}-keepalived.log").read_text()
        assert first_write < 20  # ~5-8 s here; the notify's start dominates under load
        assert eventually(lambda: holding(config_b), 15)  # after the ARPs (~2 s)
        assert vpd_serial(client) == serial  # B presents the same disk
        check = qemu_io(client, "read -P 0xa5 0 1M", timeout=30)
        assert check.returncode == 0 and "Pattern verification failed" not in check.stdout
        check = qemu_io(client, "read -P 0x5a 1M 1M", timeout=30)
        assert check.returncode == 0 and "Pattern verification failed" not in check.stdout
    finally:
        clean_up(lab, configs, storage)


def test_two_serves_share_the_portal_and_status_follows_a_power_cut(
        tmp_path: Path, ceph_cluster: ceph.Cluster, ceph_attach, postgres_server,
        postgres_url: str) -> None:
    """`netboot serve` on two servers sharing a PostgreSQL inventory runs keepalived before
    tgtd; the first holds the portal; when it is power-cut the other fences it and takes
    the portal, and `status` shows the move and the lost server."""
    lab = Lab(tmp_path)
    configs: list[Config] = []
    storage: dict[str, IPv4Address] = {}
    try:
        a, b = lab.netns("a"), lab.netns("b")
        links = lab.switch((a, "198.18.40.2/24", None), (b, "198.18.40.3/24", None))
        storage.update({a: ceph_attach(a).ip, b: ceph_attach(b).ip})
        router_id = random.randint(1, 255)
        inventory = (f'inventory:\n  url: "{postgres_url}"\n'
                     f"  password_file: {postgres_server.password_file}\n")
        serves = {}
        for ns, name, address, priority, peer, pool in (
                (a, "boot-a", "198.18.40.2", 150, b, ("198.18.40.192", "198.18.40.223")),
                (b, "boot-b", "198.18.40.3", 100, a, ("198.18.40.224", "198.18.40.254"))):
            config = server_config(
                tmp_path / f"{ns}.yaml", links[ns], address, ceph_cluster, priority=priority,
                router_id=router_id, peer=storage[peer], extra=inventory,
                server=f"  name: {name}\n  user: root\n",
                dhcp=f"  range_start: {pool[0]}\n  range_end: {pool[1]}\n")
            configs.append(config)
            serves[ns] = lab.serve(ns, config.source, tmp_path / f"{ns}-serve.log")
            if ns == a:  # A first: it becomes master alone (nopreempt keeps it there)
                assert eventually(lambda c=config: holding(c), 30), (
                    (tmp_path / f"{a}-serve.log").read_text())
        config_a, config_b = configs
        assert eventually(lambda: server_states(config_a) == {"boot-a": ("running", "holder"),
                                                       "boot-b": ("running", "standby")}, 15)
        assert status(config_b)["portal_holder"] == "boot-a"

        iproute.ip("link", "delete", links[a], netns=a)  # the power cut
        tgtd_a = tgtd_pid(config_a.target.tgt_control_port)
        os.killpg(serves[a].pid, signal.SIGKILL)  # serve and its keepalived
        if tgtd_a is not None:
            os.kill(tgtd_a, signal.SIGKILL)
        assert eventually(lambda: holding(config_b), 30), (
            (tmp_path / f"{b}-serve.log").read_text())
        assert eventually(lambda: server_states(config_b) == {"boot-a": ("lost", "holder"),
                                                       "boot-b": ("running", "holder")}, 30)
        assert status(config_b)["portal_holder"] == "boot-b"
        assert tgtd_pid(config_b.target.tgt_control_port) is not None
    finally:
        clean_up(lab, configs, storage)
