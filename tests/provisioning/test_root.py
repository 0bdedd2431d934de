"""Root LUN provisioning: reflink on XFS, sparse copy on ext4, and nothing left by a failure."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from netboot.provisioning.root import recover_interrupted
from netboot.storage.clone import CloneError, Method, data_extents
from netboot.storage.filestore import FileStore
from netboot.storage.images import build_builtin, build_image
from netboot.storage.location import Location
from netboot.target.reconcile import reconcile
from netboot.target.tgt import TgtBackend
from tests.conftest import needs_root
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    backend,
    inventory,
    loop_fs,
    target_config,
    tgtd,
    tgtd_endpoint,
)

pytestmark = [needs_root, pytest.mark.root]
MAC = "52:54:00:00:00:21"


def config_on(make_config, root: Path) -> Config:
    return make_config(f"storage:\n  state_dir: {root}/state\n",
                       base="server:\n  interface: nb0\n  address: 198.18.0.1\n"
                            "  tftp_root: {tftp_root}\ndhcp:\n  subnet: 198.18.0.0/24\n")


def used(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def data_image(config: Config, tmp_path: Path, name: str, megabytes: int):
    """An image holding ``megabytes`` of random data (so copying it costs real blocks)."""
    tree = tmp_path / f"tree-{name}"
    tree.mkdir()
    with open(tree / "data.bin", "wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
    return build_image(config, name, tree)


def test_clone_on_xfs_is_a_reflink_that_takes_no_space(make_config, loop_fs,
                                                       tmp_path: Path) -> None:
    config = config_on(make_config, loop_fs("xfs"))
    image = data_image(config, tmp_path, "golden", 24)
    with Inventory(config.storage.database) as inventory:
        before = free_bytes(config.storage.luns.parent)
        added = add_client(config, inventory, MAC, image="golden", size=image.size)
        after = free_bytes(config.storage.luns.parent)
    assert added.method == Method.REFLINK
    assert before - after < (1 << 20) < image.used // 16


def test_clone_on_ext4_is_a_sparse_copy_grown_to_size(make_config, loop_fs) -> None:
    config = config_on(make_config, loop_fs("ext4"))
    image = build_builtin(config)
    with Inventory(config.storage.database) as inventory:
        added = add_client(config, inventory, MAC, image="builtin", size=256 << 20)
    lun = Path(added.client.lun_path)
    assert added.method == Method.SPARSE
    assert lun.stat().st_size == 256 << 20
    assert used(lun) < 2 * image.used  # holes stayed holes
    check = subprocess.run(["e2fsck", "-fn", str(lun)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    header = subprocess.run(["dumpe2fs", "-h", str(lun)], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    assert int(fields["Block count"]) * int(fields["Block size"]) == 256 << 20


def test_sparse_copy_keeps_the_same_data_extents(make_config, loop_fs) -> None:
    config = config_on(make_config, loop_fs("ext4"))
    image = build_builtin(config)
    with Inventory(config.storage.database) as inventory:
        added = add_client(config, inventory, MAC, image="builtin", size=image.size)
    lun = Path(added.client.lun_path)
    assert lun.read_bytes() == image.path.read_bytes()
    fds = [os.open(p, os.O_RDONLY) for p in (image.path, lun)]
    try:
        src, dst = (data_extents(fd, image.size) for fd in fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert sum(n for _, n in dst) <= sum(n for _, n in src)


def test_failed_clone_leaves_no_record_file_or_target(make_config, loop_fs, tmp_path: Path,
                                                      tgtd: Tgtd) -> None:
    root = loop_fs("ext4", "96M")
    config = make_config(f"""
        target:
          portal_address: {tgtd.portal[0]}
          portal_port: {tgtd.portal[1]}
          tgt_control_port: {tgtd.control_port}
        storage:
          state_dir: {root}/state
        """, base="server:\n  interface: nb0\n  address: 198.18.0.1\n  tftp_root: {tftp_root}\n"
                  "dhcp:\n  subnet: 198.18.0.0/24\n")
    data_image(config, tmp_path, "fat", 56)  # the disk has no room for a second copy
    backend = TgtBackend(tgtd.control_port, config.storage.state_dir)
    with Inventory(config.storage.database) as inventory:
        with pytest.raises(CloneError, match="No space left"):
            add_client(config, inventory, MAC, image="fat", backend=backend)
        assert inventory.clients() == []
    assert [p.name for p in config.storage.luns.iterdir() if not p.name.endswith(".lock")] == []
    assert backend.targets() == []


def test_sigkill_mid_clone_leaves_nothing_after_the_next_start(
        target_config: Config, inventory: Inventory, backend: TgtBackend,
        tmp_path: Path) -> None:
    data_image(target_config, tmp_path, "big", 160)
    command = [sys.executable, "-m", "netboot", "--config", str(target_config.source),
               "client", "add", MAC, "--image", "big", "--size", "2G"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    luns = target_config.storage.luns
    deadline = time.monotonic() + 60
    temp = None
    while temp is None and child.poll() is None and time.monotonic() < deadline:
        temp = next((p for p in luns.glob(".*.tmp-*")), None) if luns.is_dir() else None
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert temp is not None, "the clone finished before it could be interrupted"
    assert inventory.find(MAC) is not None and not inventory.find(MAC).provisioned

    recover_interrupted(target_config, inventory)  # what the next `serve` start does,
    reconcile(target_config, inventory, backend)  # then its first reconcile

    assert inventory.find(MAC) is None
    assert [p.name for p in luns.iterdir() if not p.name.endswith(".lock")] == []
    assert backend.targets() == []


def test_a_reflinked_root_counts_only_its_own_bytes_as_used(make_config, loop_fs,
                                                            tmp_path: Path) -> None:
    config = config_on(make_config, loop_fs("xfs"))
    image = data_image(config, tmp_path, "golden", 24)
    with Inventory(config.storage.database) as inventory:
        added = add_client(config, inventory, MAC, image="golden", size=image.size)
    store = FileStore(config)
    root = Location.parse(added.client.lun_path)
    assert store.allocated(root) < 1 << 20 < image.used  # st_blocks would say image.used
    with open(root.name, "r+b") as f:
        f.write(b"\x01" * (4 << 20))
    assert (4 << 20) <= store.allocated(root) < (5 << 20)
