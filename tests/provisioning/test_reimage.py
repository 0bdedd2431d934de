"""`client reimage` of a full-clone client on a real tgtd: what its target serves (read over
iSCSI with QEMU's initiator), the previous root kept until undone or purged, and nothing
left by a refused or killed reimage."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.errors import Conflict
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from netboot.provisioning.reimage import purge_previous, reimage_client, undo_reimage
from netboot.provisioning.root import recover_interrupted
from netboot.storage.images import build_image
from netboot.target.tgt import TgtBackend
from tests.conftest import needs_root
from tests.provisioning.test_root import data_image
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    backend,
    inventory,
    logged_in,
    qemu_io,
    target_config,
    tgtd,
    tgtd_endpoint,
)

pytestmark = [needs_root, pytest.mark.root]
MAC = "52:54:00:00:00:22"
MARK = "0x5a"  # what the client "wrote": a pattern near the end of its root
WRITTEN = f"{(60 << 20):d} 65536"  # offset and length of it, inside the 64M root


@pytest.fixture
def versions(target_config: Config, tmp_path: Path) -> None:
    """Image ``os`` in two versions."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for release in ("1", "2"):
        (tree / "release").write_text(release)
        build_image(target_config, "os", tree)


@pytest.fixture
def written(target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
            versions) -> None:
    """A client on os@1 that wrote MARK to its root through its target."""
    added = add_client(target_config, inventory, MAC, image="os@1", size=64 << 20,
                       backend=backend)
    assert qemu_io(tgtd, added.client, f"write -P {MARK} {WRITTEN}", write=True).returncode == 0


def has_mark(tgtd: Tgtd, inventory: Inventory) -> bool:
    """Whether the root the client's target serves now holds what it wrote."""
    read = qemu_io(tgtd, inventory.get(MAC), f"read -P {MARK} {WRITTEN}")
    assert "read 65536/65536 bytes" in read.stdout, read  # the read itself worked
    return read.returncode == 0  # 1: "Pattern verification failed"


def test_a_reimaged_client_is_served_a_fresh_root_of_the_new_version(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        written) -> None:
    done = reimage_client(target_config, inventory, MAC, "os", backend=backend)
    assert (done.client.image, done.client.previous_image) == ("os@2", "os@1")
    assert not has_mark(tgtd, inventory)
    release = subprocess.run(["debugfs", "-R", "cat /release", done.client.lun_path],
                             capture_output=True, text=True, check=True).stdout
    assert release == "2"


def test_undo_serves_the_kept_root_again_with_what_the_client_wrote(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        written) -> None:
    made = reimage_client(target_config, inventory, MAC, "os@2", backend=backend)
    back = undo_reimage(target_config, inventory, MAC, backend=backend)
    assert (back.client.image, back.client.previous_lun_path) == ("os@1", None)
    assert has_mark(tgtd, inventory)
    assert not Path(str(made.client.lun_path)).exists()


def test_purge_deletes_the_kept_root_and_leaves_nothing_to_undo(
        target_config: Config, inventory: Inventory, backend: TgtBackend, written) -> None:
    kept = inventory.get(MAC).lun_path
    reimage_client(target_config, inventory, MAC, "os@2", backend=backend)
    purge_previous(target_config, inventory, MAC)
    assert not Path(str(kept)).exists()
    with pytest.raises(Conflict, match="keeps no previous root: nothing to undo"):
        undo_reimage(target_config, inventory, MAC, backend=backend)


def test_a_second_reimage_is_refused_while_the_previous_root_is_kept(
        target_config: Config, inventory: Inventory, backend: TgtBackend, written) -> None:
    reimage_client(target_config, inventory, MAC, "os@2", backend=backend)
    with pytest.raises(Conflict, match="still keeps its previous root"):
        reimage_client(target_config, inventory, MAC, "os@1", backend=backend)


def test_a_reimage_is_refused_while_the_client_is_logged_in(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        written) -> None:
    client = inventory.get(MAC)
    with logged_in(tgtd, backend, client), \
            pytest.raises(Conflict, match="is logged in to its target"):
        reimage_client(target_config, inventory, MAC, "os@2", backend=backend)
    assert inventory.get(MAC) == client


def test_sigkill_mid_reimage_leaves_the_client_on_its_root_and_nothing_else(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tmp_path: Path,
        versions) -> None:
    before = add_client(target_config, inventory, MAC, image="os@1", size=1 << 30,
                        backend=backend).client
    data_image(target_config, tmp_path, "big", 160)
    command = [sys.executable, "-m", "netboot", "--config", str(target_config.source),
               "client", "reimage", MAC, "--image", "big"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    luns = target_config.storage.luns
    deadline = time.monotonic() + 60
    temp = None
    while temp is None and child.poll() is None and time.monotonic() < deadline:
        temp = next(luns.glob(".*.tmp-*"), None)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert temp is not None, "the clone finished before it could be interrupted"
    assert inventory.get(MAC).next_lun_path is not None

    recover_interrupted(target_config, inventory)  # what the next `serve` start does

    assert inventory.get(MAC) == before
    assert sorted(p.name for p in luns.iterdir() if not p.name.endswith(".lock")) == [
        Path(str(before.lun_path)).name]
