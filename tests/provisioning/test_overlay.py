"""Overlay clients on a real tgtd: the upper layer made at add, the lower layer moved by
`client set --image` with the upper kept (read over iSCSI with QEMU's initiator), `client
reset`, and what is refused: the wrong method, a logged-in client, a version in use."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.errors import Conflict, ValidationError
from netboot.inventory.clients import BootMethod
from netboot.inventory.luns import LOWER_LUN
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from netboot.provisioning.overlay import reset_upper, set_lower
from netboot.provisioning.reimage import reimage_client
from netboot.storage.images import get_image, remove_image
from netboot.target.model import Lun
from netboot.target.tgt import TgtBackend
from tests.conftest import needs_root
from tests.provisioning.test_reimage import versions  # noqa: F401  (a fixture)
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
MAC = "52:54:00:00:00:33"
FULL = "52:54:00:00:00:34"
MARK = "0x6b"
WRITTEN = f"{(12 << 20):d} 65536"  # inside the 16M upper


@pytest.fixture
def overlay(target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
            versions) -> Path:
    """An overlay client on os@1 that wrote MARK to its upper through its target."""
    added = add_client(target_config, inventory, MAC, image="os@1", backend=backend,
                       boot_method=BootMethod.OVERLAY, overlay_size=16 << 20)
    assert qemu_io(tgtd, added.client, f"write -P {MARK} {WRITTEN}", write=True).returncode == 0
    return Path(str(added.client.lun_path))


def lower_of(backend: TgtBackend, inventory: Inventory) -> list[Lun]:
    iqn = inventory.get(MAC).target_iqn
    return [lun for t in backend.targets() if t.iqn == iqn for lun in t.luns
            if lun.number == LOWER_LUN]


def has_mark(tgtd: Tgtd, inventory: Inventory) -> bool:
    read = qemu_io(tgtd, inventory.get(MAC), f"read -P {MARK} {WRITTEN}")
    assert "read 65536/65536 bytes" in read.stdout, read
    return read.returncode == 0


def test_an_overlay_client_gets_an_empty_sparse_upper_and_its_image_read_only(
        target_config: Config, inventory: Inventory, backend: TgtBackend, versions) -> None:
    client = add_client(target_config, inventory, MAC, image="os@1", backend=backend,
                        boot_method=BootMethod.OVERLAY).client
    upper = Path(str(client.lun_path))
    assert (client.image, client.lun_size, upper.stat().st_size) == ("os@1", 2 << 30, 2 << 30)
    assert upper.stat().st_blocks * 512 < 8 << 20  # sparse: metadata only, no journal written
    assert oct(upper.stat().st_mode & 0o777) == "0o600"
    listing = subprocess.run(["debugfs", "-R", "ls -l /", str(upper)], capture_output=True,
                             text=True, check=True).stdout
    assert " upper" in listing and " work" in listing
    assert lower_of(backend, inventory) == [
        Lun(LOWER_LUN, str(get_image(target_config, "os@1").path), readonly=True)]


def test_set_image_moves_the_lower_layer_and_keeps_what_the_client_wrote(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        overlay: Path) -> None:
    done = set_lower(target_config, inventory, MAC, "os@2", backend=backend)
    assert done.client.image == "os@2" and done.applied.done
    assert Path(str(done.client.lun_path)) == overlay
    assert lower_of(backend, inventory) == [
        Lun(LOWER_LUN, str(get_image(target_config, "os@2").path), readonly=True)]
    assert has_mark(tgtd, inventory)
    read = qemu_io(tgtd, inventory.get(MAC), "read -v 1080 2", lun=LOWER_LUN)
    assert read.returncode == 0 and "53 ef" in read.stdout, read


def test_an_image_version_an_overlay_client_is_set_to_cannot_be_removed(
        target_config: Config, inventory: Inventory, backend: TgtBackend, overlay: Path) -> None:
    with pytest.raises(Conflict, match="is used by 1 client"):
        remove_image(target_config, inventory, "os@1")
    set_lower(target_config, inventory, MAC, "os@2", backend=backend)
    assert [i.ref for i in remove_image(target_config, inventory, "os@1")] == ["os@1"]


def test_reset_gives_an_empty_upper_and_deletes_the_old_one(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        overlay: Path) -> None:
    done = reset_upper(target_config, inventory, MAC, backend=backend)
    fresh = Path(str(done.client.lun_path))
    assert fresh != overlay and not overlay.exists() and fresh.exists()
    assert done.client.lun_size == 16 << 20 and done.client.next_lun_path is None
    assert not has_mark(tgtd, inventory)
    iqn = inventory.get(MAC).target_iqn
    assert [lun.path for t in backend.targets() if t.iqn == iqn for lun in t.luns
            if lun.number == 1] == [str(fresh)]


def test_full_clones_and_overlay_clients_each_keep_their_own_commands(
        target_config: Config, inventory: Inventory, backend: TgtBackend, overlay: Path) -> None:
    add_client(target_config, inventory, FULL, image="os@1", size=64 << 20, backend=backend)
    with pytest.raises(ValidationError, match=r"client set .* --image"):
        reimage_client(target_config, inventory, MAC, "os@2", backend=backend)
    with pytest.raises(ValidationError, match="for overlay clients"):
        set_lower(target_config, inventory, FULL, "os@2", backend=backend)
    with pytest.raises(ValidationError, match="for overlay clients"):
        reset_upper(target_config, inventory, FULL, backend=backend)


def test_overlay_add_refuses_what_it_cannot_serve(
        target_config: Config, inventory: Inventory, versions) -> None:
    with pytest.raises(ValidationError, match="needs --image"):
        add_client(target_config, inventory, MAC, boot_method=BootMethod.OVERLAY)
    with pytest.raises(ValidationError, match="--overlay-size, not --size"):
        add_client(target_config, inventory, MAC, image="os", size=1 << 30,
                   boot_method=BootMethod.OVERLAY)
    with pytest.raises(ValidationError, match="--overlay-size is for"):
        add_client(target_config, inventory, MAC, image="os", overlay_size=1 << 30)
    assert inventory.clients() == []


def test_set_image_and_reset_are_refused_while_the_client_is_logged_in(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        overlay: Path) -> None:
    client = inventory.get(MAC)
    with logged_in(tgtd, backend, client, LOWER_LUN):
        with pytest.raises(Conflict, match="is logged in to its target"):
            set_lower(target_config, inventory, MAC, "os@2", backend=backend)
        with pytest.raises(Conflict, match="is logged in to its target"):
            reset_upper(target_config, inventory, MAC, backend=backend)
    assert inventory.get(MAC) == client and os.path.exists(overlay)
