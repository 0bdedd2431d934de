"""Fixtures for the target tests: a private tgtd, loop-device filesystems, libiscsi initiators.

Every tgtd here listens on a random 127.x loopback address and a free port,
on a control port of its own, and is stopped the way tgtd listens to
(targets deleted, then ``--op delete --mode system``) even when a test fails.
"""

from __future__ import annotations

import random
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.inventory.clients import Client
from netboot.inventory.store import Inventory, open_inventory
from netboot.storage.images import Image, build_builtin
from netboot.target.tgt import TgtBackend
from netboot.target.tgtd import (
    forget_control_port,
    free_control_port,
    start_tgtd,
    stop_tgtd,
    tgtd_pid,
)
from tests.support.postgres import inventory_yaml


@dataclass(frozen=True)
class Tgtd:
    control_port: int
    portal: tuple[IPv4Address, int]

    @property
    def url(self) -> str:
        return f"{self.portal[0]}:{self.portal[1]}"


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def tgtadm(control_port: int, *args: str) -> str:
    """Run the real ``tgtadm --lld iscsi`` on a test's tgtd: an admin's tool, and the
    reference the socket client is compared with. Its stdout; a failure fails the test."""
    done = subprocess.run(["tgtadm", "-C", str(control_port), "--lld", "iscsi", *args],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"tgtadm {' '.join(args[:4])}: {done.stderr.strip()}"
    return done.stdout


@pytest.fixture
def tgtd_endpoint() -> Tgtd:
    """A portal and control port nobody uses (tgtd not started)."""
    address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
    return Tgtd(free_control_port(), (IPv4Address(address), free_port(address)))


@pytest.fixture
def tgtd(tgtd_endpoint: Tgtd) -> Iterator[Tgtd]:
    """A running tgtd of this test's own, stopped properly afterwards."""
    start_tgtd(tgtd_endpoint.control_port, tgtd_endpoint.portal)
    try:
        yield tgtd_endpoint
    finally:
        stop_tgtd(tgtd_endpoint.control_port)
        assert tgtd_pid(tgtd_endpoint.control_port) is None
        forget_control_port(tgtd_endpoint.control_port)


@pytest.fixture
def target_config(request: pytest.FixtureRequest, make_config: Callable[..., Config],
                  tgtd_endpoint: Tgtd, inventory_store: str) -> Config:
    """A config whose target is this test's tgtd; state in tmp_path; the inventory on
    ``inventory_store`` (SQLite unless the test says)."""
    address, port = tgtd_endpoint.portal
    return make_config(textwrap.dedent(f"""
        target:
          portal_address: {address}
          portal_port: {port}
          tgt_control_port: {tgtd_endpoint.control_port}
        """) + inventory_yaml(request, inventory_store))


@pytest.fixture
def inventory(target_config: Config) -> Iterator[Inventory]:
    with open_inventory(target_config) as inv:
        yield inv


@pytest.fixture
def loop_fs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``make(fstype)`` -> a fresh filesystem on a loop device, mounted in tmp_path."""
    made: list[tuple[Path, str]] = []

    def make(fstype: str, size: str = "512M") -> Path:
        image = tmp_path / f"{fstype}.fs"
        mountpoint = tmp_path / f"{fstype}-mnt"
        subprocess.run(["truncate", "-s", size, str(image)], check=True)
        mkfs = {"xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"], "ext4": ["mkfs.ext4", "-q"],
                "btrfs": ["mkfs.btrfs", "-q"]}[fstype]
        subprocess.run([*mkfs, str(image)], check=True)
        device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                                capture_output=True, text=True).stdout.strip()
        mountpoint.mkdir()
        made.append((mountpoint, device))
        subprocess.run(["mount", device, str(mountpoint)], check=True)
        return mountpoint

    yield make
    for mountpoint, device in reversed(made):
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``make(size)`` -> a loop block device over a sparse file in tmp_path."""
    devices: list[str] = []

    def make(size: int) -> Path:
        backing = tmp_path / f"blockdev{len(devices)}.raw"
        with open(backing, "wb") as f:
            f.truncate(size)
        device = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                                capture_output=True, text=True).stdout.strip()
        devices.append(device)
        return Path(device)

    yield make
    for device in devices:
        subprocess.run(["losetup", "-d", device], check=False)


# -- libiscsi and QEMU as real initiators ------------------------------------------


def _url(tgtd: Tgtd, user: str | None, secret: str | None, path: str = "") -> str:
    auth = f"{user}%{secret}@" if user else ""
    return f"iscsi://{auth}{tgtd.url}{path}"


def iscsi(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def read_capacity(tgtd: Tgtd, initiator: str, user: str | None, secret: str | None,
                  target: str, lun: int = 1) -> subprocess.CompletedProcess[str]:
    """``iscsi-readcapacity16 -s``: logs in and prints the LUN's size in bytes."""
    return iscsi(["iscsi-readcapacity16", "-s", "-i", initiator,
                  _url(tgtd, user, secret, f"/{target}/{lun}")])


def discover(tgtd: Tgtd, initiator: str, user: str | None = None,
             secret: str | None = None) -> subprocess.CompletedProcess[str]:
    """``iscsi-ls``: SendTargets discovery as ``initiator``."""
    return iscsi(["iscsi-ls", "-i", initiator, _url(tgtd, user, secret)])


def qemu_io(tgtd: Tgtd, client: Client, command: str, *, lun: int = 1,
            write: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one qemu-io command on a client's LUN through QEMU's iSCSI driver."""
    opts = (f"driver=iscsi,transport=tcp,portal={tgtd.url},target={client.target_iqn},"
            f"lun={lun},user={client.chap_user},password={client.chap_secret},"
            f"initiator-name={client.initiator_iqn}")
    return iscsi(["qemu-io", *([] if write else ["-r"]), "--image-opts", opts, "-c", command])


@contextmanager
def logged_in(tgtd: Tgtd, backend: TgtBackend, client: Client, lun: int = 1) -> Iterator[None]:
    """An initiator (libiscsi's iscsi-perf, reading LUN ``lun``) logged in to ``client``'s
    target for the block, as a running client would be."""
    url = f"iscsi://{client.chap_user}%{client.chap_secret}@{tgtd.url}/{client.target_iqn}/{lun}"
    reader = subprocess.Popen(["iscsi-perf", "-i", client.initiator_iqn, "-t", "30", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not [t for t in backend.targets() if t.iqn == client.target_iqn and t.logins]:
            assert time.monotonic() < deadline, "iscsi-perf did not log in"
            time.sleep(0.1)
        yield
    finally:
        reader.kill()
        reader.wait()


@pytest.fixture
def backend(target_config: Config, tgtd: Tgtd) -> TgtBackend:
    """The tgt backend talking to this test's tgtd."""
    return TgtBackend(tgtd.control_port, target_config.storage.state_dir)


@pytest.fixture
def builtin_image(target_config: Config) -> Image:
    return build_builtin(target_config)
