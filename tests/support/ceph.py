"""The one-node Ceph cluster tests share: brought up once per test session, the host
attached, taken down at the session's end (pass or fail).

Registered as a plugin by tests/conftest.py and qemu-tests/conftest.py
(``pytest_plugins``), so both folders get the same single cluster. A test that
uses it makes images under names of its own (:func:`image_name`) and removes
them; a test that needs the cluster from a namespace attaches it with
``ceph_attach(netns)``, detached after the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from netboot.host import iproute
from netboot.lab import ceph


def missing() -> str | None:
    """Why the cluster cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root: the Ceph cluster runs in a network namespace of its own"
    absent = [program for program in ceph.PROGRAMS if shutil.which(program) is None]
    if absent:
        return (f"Ceph is not installed ({', '.join(absent)} missing: Debian packages ceph-mon "
                "ceph-mgr ceph-osd ceph-common; `make setup` installs them)")
    try:
        import rados  # noqa: F401  (only to tell whether Ceph's bindings are here)
        import rbd  # noqa: F401
    except ImportError:
        return ("Ceph's Python bindings are not in this interpreter (Debian python3-rados "
                "python3-rbd, linked into the venv by `make setup`)")
    return None


def image_name(prefix: str = "test") -> str:
    """An RBD image name no other test uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def listening(netns: str | None) -> list[str]:
    """Local addresses of listening TCP sockets (in ``netns``, or the host's)."""
    argv = ["ss", "-Hltn"]
    out = subprocess.run(iproute.in_netns(netns, argv) if netns else argv, capture_output=True,
                         text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines()]


def leftovers(cluster: ceph.Cluster) -> list[str]:
    """Whatever of ``cluster`` is still there: processes, namespace, links, routes, files."""
    left = [f"process {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}"
            for pid in ceph.processes_naming(str(cluster.directory))]
    if cluster.netns in iproute.netns_names():
        left.append(f"namespace {cluster.netns}")
    links = json.loads(iproute.ip("-j", "link", "show"))
    left += [f"link {link['ifname']}" for link in links
             if link["ifname"].startswith(cluster.netns)]
    left += [f"route {r}" for r in iproute.ipv4_routes() if r == cluster.address.network]
    left += [f"listening {a}" for a in listening(None) if str(cluster.address.ip) in a]
    if cluster.directory.exists():
        left.append(f"files {sorted(p.name for p in cluster.directory.iterdir())}")
    return left


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ceph.Cluster]:
    """One cluster for the session (~5 s to make), the host attached to it: connect with
    ``rados.Rados(conffile=str(c.conf), rados_id=c.client_id)`` and ``c.pool``."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("ceph")
    try:
        cluster = ceph.up(directory, say=lambda _: None)
        ceph.attach(cluster, None)
        yield cluster
    finally:
        ceph.down(directory)


@pytest.fixture
def ceph_attach(ceph_cluster: ceph.Cluster) -> Iterator[Callable[[str], IPv4Interface]]:
    """``ceph_attach(netns)``: the session's cluster reachable from ``netns`` (its address
    there returned), detached after the test."""
    attached: list[str] = []

    def attach(netns: str) -> IPv4Interface:
        attached.append(netns)
        return ceph.attach(ceph_cluster, netns)

    yield attach
    for netns in attached:
        ceph.detach(ceph_cluster, netns)
