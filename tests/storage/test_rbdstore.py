"""The RBD store on a real one-node Ceph cluster: images as versioned snapshots, roots as thin
clones served by a real tgtd through bs_rbd and read back by libiscsi and QEMU's initiator."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import rados
import rbd

from netboot.config import Config
from netboot.errors import Conflict, ValidationError
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.luns import LOWER_LUN, ROOT_LUN, LunKind, LunOwner, OwnerKind
from netboot.inventory.store import Inventory
from netboot.lab.ceph import Cluster
from netboot.provisioning.clients import add_client, apply_targets, remove_client
from netboot.provisioning.luns import add_lun
from netboot.provisioning.overlay import reset_upper, set_lower
from netboot.provisioning.root import recover_interrupted
from netboot.storage import rbdstore
from netboot.storage.backend import Storage, open_storage
from netboot.storage.images import build_builtin, get_image, list_images, remove_image
from netboot.storage.location import Location, Store
from netboot.target import open_backend
from netboot.target.model import Lun
from netboot.target.reconcile import reconcile
from tests.support.ceph import image_name
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    qemu_io,
    tgtd,
    tgtd_endpoint,
)
from tests.support.waiting import eventually

MAC = "52:54:00:00:0c:01"
OTHER = "52:54:00:00:0c:02"


@pytest.fixture
def rbd_config(make_config: Callable[..., Config], tgtd_endpoint: Tgtd,
               ceph_cluster: Cluster) -> Config:
    """Storage on the session's cluster (as client.netboot), the target this test's tgtd."""
    address, port = tgtd_endpoint.portal
    rbd = (f"  backend: rbd\n  rbd:\n    pool: {ceph_cluster.pool}\n"
           f"    ceph_conf: {ceph_cluster.conf}\n    client_id: {ceph_cluster.client_id}\n")
    return make_config(rbd + f"target:\n  portal_address: {address}\n  portal_port: {port}\n"
                       f"  tgt_control_port: {tgtd_endpoint.control_port}\n")


@pytest.fixture
def inventory(rbd_config: Config) -> Iterator[Inventory]:
    with Inventory(rbd_config.storage.database) as inv:
        yield inv


@pytest.fixture
def pool(ceph_cluster: Cluster) -> Iterator[rados.Ioctx]:
    with (rados.Rados(conffile=str(ceph_cluster.conf), rados_id=ceph_cluster.client_id) as c,
          c.open_ioctx(ceph_cluster.pool) as io):
        yield io


def read_rbd(io: rados.Ioctx, name: str, length: int, snapshot: str | None = None) -> bytes:
    with rbd.Image(io, name, snapshot=snapshot, read_only=True) as image:
        return image.read(0, length)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_lun(tgtd: Tgtd, client: Client, lun: int, out: Path) -> bytes:
    """LUN ``lun`` of ``client``'s target, whole, as QEMU's iSCSI initiator reads it."""
    opts = (f"driver=iscsi,transport=tcp,portal={tgtd.url},target={client.target_iqn},"
            f"lun={lun},user={client.chap_user},password={client.chap_secret},"
            f"initiator-name={client.initiator_iqn}")
    done = subprocess.run(["qemu-img", "convert", "--image-opts", opts, "-O", "raw", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def rbd_names(io: rados.Ioctx) -> set[str]:
    return set(rbd.RBD().list(io))


def test_built_image_is_an_rbd_image_with_a_protected_version_snapshot(
        rbd_config: Config, pool: rados.Ioctx, tmp_path: Path) -> None:
    name = image_name("img")
    made = build_builtin(rbd_config, name)
    assert made.location == Location(Store.RBD,
                                     f"{rbd_config.storage.rbd.pool}/image.{name}@v1")
    assert made.version == 1
    with rbd.Image(pool, f"image.{name}", read_only=True) as image:
        assert [s["name"] for s in image.list_snaps()] == ["v1"]
        assert image.is_protected_snap("v1")
    assert not list((rbd_config.storage.cache / "staging").glob("*.img"))  # uploaded, gone
    assert made.used < made.size  # only the data was written


def test_building_an_image_name_again_makes_its_next_version(rbd_config: Config) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    again = build_builtin(rbd_config, name)
    assert (again.ref, again.made) == (f"{name}@2", "built-in")
    assert [i.ref for i in open_storage(rbd_config).images() if i.name == name] == [
        f"{name}@1", f"{name}@2"]


def test_root_is_a_thin_clone_whose_blocks_libiscsi_reads_back_equal_to_the_image(
        rbd_config: Config, inventory: Inventory, tgtd: Tgtd, pool: rados.Ioctx,
        tmp_path: Path) -> None:
    name = image_name("img")
    image = build_builtin(rbd_config, name)
    added = add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name,
                       size=image.size, backend=open_backend(rbd_config))
    assert added.target.done
    root = Location.parse(added.client.lun_path)
    with rbd.Image(pool, root.image, read_only=True) as clone:
        assert clone.parent_info()[1:] == (f"image.{name}", "v1")
        assert clone.metadata_get("conf_rbd_cache") == "false"
    read = read_lun(tgtd, added.client, 1, tmp_path / "read.raw")
    assert sha(read) == sha(read_rbd(pool, f"image.{name}", image.size, "v1"))


def test_writes_to_one_clone_show_neither_in_another_nor_in_the_image(
        rbd_config: Config, inventory: Inventory, tgtd: Tgtd, pool: rados.Ioctx) -> None:
    name = image_name("img")
    image = build_builtin(rbd_config, name)
    backend = open_backend(rbd_config)
    first = add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name,
                       size=image.size, backend=backend).client
    second = add_client(rbd_config, inventory, OTHER, hostname=image_name("h"), image=name,
                        size=image.size, backend=backend).client
    before = read_rbd(pool, f"image.{name}", 1 << 20, "v1")
    written = qemu_io(tgtd, first, "write -P 0x5a 0 1M", write=True)
    assert written.returncode == 0, written.stderr
    assert read_rbd(pool, Location.parse(first.lun_path).image, 1 << 20) == b"\x5a" * (1 << 20)
    assert read_rbd(pool, Location.parse(second.lun_path).image, 1 << 20) == before
    assert read_rbd(pool, f"image.{name}", 1 << 20, "v1") == before


def test_size_grows_the_clone(rbd_config: Config, inventory: Inventory,
                              pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    added = add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name,
                       size=256 << 20)
    with rbd.Image(pool, Location.parse(added.client.lun_path).image, read_only=True) as clone:
        assert clone.size() == 256 << 20


def test_remove_purge_deletes_the_clone(rbd_config: Config, inventory: Inventory,
                                        pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    added = add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name)
    root = Location.parse(added.client.lun_path)
    assert root.image in rbd_names(pool)
    remove_client(rbd_config, inventory, MAC, purge=True)
    assert root.image not in rbd_names(pool)


def test_remove_without_purge_keeps_the_clone(rbd_config: Config, inventory: Inventory,
                                              pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    added = add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name)
    remove_client(rbd_config, inventory, MAC)
    assert Location.parse(added.client.lun_path).image in rbd_names(pool)


def test_image_remove_is_refused_while_a_client_uses_it(rbd_config: Config,
                                                        inventory: Inventory) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name)
    with pytest.raises(Conflict, match="used by 1 client"):
        remove_image(rbd_config, inventory, name)


def test_image_remove_is_refused_while_a_clone_exists_even_without_its_record(
        rbd_config: Config, inventory: Inventory, pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    added = add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name)
    remove_client(rbd_config, inventory, MAC)  # the clone stays (no --purge)
    clone = Location.parse(added.client.lun_path).image
    with pytest.raises(Conflict, match=f"has clones: .*{clone}"):
        remove_image(rbd_config, inventory, name)
    assert f"image.{name}" in rbd_names(pool)


def test_image_remove_deletes_an_unused_image_and_its_versions(
        rbd_config: Config, inventory: Inventory, pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    remove_image(rbd_config, inventory, name)
    assert f"image.{name}" not in rbd_names(pool)
    assert name not in [i.name for i in list_images(rbd_config, inventory)]


def test_image_list_shows_the_clients_cloned_from_it(rbd_config: Config,
                                                     inventory: Inventory) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    host = image_name("h")
    add_client(rbd_config, inventory, MAC, hostname=host, image=name)
    assert get_image(rbd_config, name, inventory).clients == (host,)


ADD_SCRIPT = """
import sys
from netboot.configfile import load_config
from netboot.inventory.store import Inventory
from netboot.inventory.clients import BootMethod
from netboot.provisioning.clients import add_client
config = load_config(sys.argv[1])
with Inventory(config.storage.database) as inventory:
    print("adding", flush=True)
    add_client(config, inventory, sys.argv[2], hostname=sys.argv[3], image=sys.argv[4],
               boot_method=BootMethod(sys.argv[5]))
"""


@pytest.mark.parametrize(("method", "delay"), [
    (BootMethod.INITRAMFS, 0.05), (BootMethod.INITRAMFS, 0.2), (BootMethod.INITRAMFS, 0.4),
    (BootMethod.INITRAMFS, 0.8), (BootMethod.OVERLAY, 0.2), (BootMethod.OVERLAY, 0.4)])
# (an overlay add took 0.5 s from "adding" to done here: its mke2fs, then its upload)
def test_a_killed_add_leaves_no_root_no_record_and_no_target(
        rbd_config: Config, inventory: Inventory, tgtd: Tgtd, pool: rados.Ioctx,
        method: BootMethod, delay: float) -> None:
    """A full clone's root or an overlay client's upper layer: whole, or nothing left."""
    name = image_name("img")
    build_builtin(rbd_config, name)
    host = image_name("h")
    proc = subprocess.Popen([sys.executable, "-c", ADD_SCRIPT, str(rbd_config.source), MAC,
                             host, name, method.value], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert proc.stdout is not None and proc.stdout.readline() == "adding\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    def recovered() -> bool:  # what the next add or serve start runs, until it is done
        recover_interrupted(rbd_config, inventory)
        left = inventory.find(MAC)
        return left is None or left.provisioned

    assert eventually(recovered, 60)  # a root still held open is retried, not half-removed
    record = inventory.find(MAC)
    if record is not None:  # it finished before the kill: then all of it is there
        assert record.provisioned
        assert f"root.{host}" in rbd_names(pool)
        return
    assert f"root.{host}" not in rbd_names(pool)
    assert not any(n.startswith(rbdstore.TEMP_PREFIX) for n in rbd_names(pool))
    backend = open_backend(rbd_config)
    assert backend is not None
    assert not [t for t in backend.targets() if host in t.iqn]


def test_an_extra_lun_on_an_rbd_image_is_made_and_served_as_lun_2(
        rbd_config: Config, inventory: Inventory, tgtd: Tgtd, pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    client = add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name,
                        backend=open_backend(rbd_config)).client
    data = Location.parse(f"rbd:{rbd_config.storage.rbd.pool}/{image_name('data')}")
    record = add_lun(rbd_config, inventory, LunOwner(OwnerKind.CLIENT, MAC), rbd=data,
                     size=48 << 20)
    assert (record.lun, record.kind, record.path) == (2, LunKind.RBD, str(data))
    apply_targets(rbd_config, inventory, open_backend(rbd_config), client.target_iqn)
    written = qemu_io(tgtd, client, "write -P 0x33 0 64k", lun=2, write=True)
    assert written.returncode == 0, written.stderr
    assert read_rbd(pool, data.image, 64 << 10) == b"\x33" * (64 << 10)
    with rbd.Image(pool, data.image, read_only=True) as image:
        assert image.size() == 48 << 20
        assert image.metadata_get("conf_rbd_cache") == "false"


def test_an_extra_rbd_lun_that_does_not_exist_needs_a_size(rbd_config: Config,
                                                           inventory: Inventory) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name)
    missing = Location.parse(f"rbd:{rbd_config.storage.rbd.pool}/{image_name('none')}")
    with pytest.raises(ValidationError, match="does not exist: give --size"):
        add_lun(rbd_config, inventory, LunOwner(OwnerKind.CLIENT, MAC), rbd=missing)


def test_an_rbd_snapshot_is_refused_as_an_extra_lun(rbd_config: Config,
                                                    inventory: Inventory) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    add_client(rbd_config, inventory, MAC, hostname=image_name("h"), image=name)
    snapshot = get_image(rbd_config, name).location
    with pytest.raises(ValidationError, match="is a snapshot, which cannot be written"):
        add_lun(rbd_config, inventory, LunOwner(OwnerKind.CLIENT, MAC), rbd=snapshot)


def staged_ext4(storage: Storage, name: str, tmp_path: Path, text: str) -> Path:
    """An ext4 file at the store's staging path holding /motd = ``text``."""
    tree = tmp_path / f"tree-{secrets.token_hex(2)}"
    tree.mkdir()
    (tree / "motd").write_text(text)
    path = storage.staging(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), str(path), "16M"],
                   check=True)
    return path


def test_a_second_version_is_a_new_snapshot_and_clones_of_the_first_keep_theirs(
        rbd_config: Config, pool: rados.Ioctx, tmp_path: Path) -> None:
    storage = open_storage(rbd_config)
    name = image_name("img")
    first = storage.keep_image(name, staged_ext4(storage, name, tmp_path, "one"), "test")
    old = storage.root_location(image_name("h"))
    storage.make_root(old, first, first.size)
    before = read_rbd(pool, old.image, first.size)
    second = storage.keep_image(name, staged_ext4(storage, name, tmp_path, "two"), "test")
    assert (first.version, second.version) == (1, 2)
    with rbd.Image(pool, f"image.{name}", read_only=True) as image:
        assert [s["name"] for s in image.list_snaps()] == ["v1", "v2"]
    assert read_rbd(pool, old.image, first.size) == before
    new = storage.root_location(image_name("h"))
    assert "version v2" in storage.make_root(new, second, second.size)
    assert read_rbd(pool, new.image, second.size) == read_rbd(pool, f"image.{name}",
                                                              second.size, "v2")
    assert read_rbd(pool, new.image, second.size) != before


def test_an_import_killed_before_its_snapshot_leaves_no_listed_image(
        rbd_config: Config, pool: rados.Ioctx) -> None:
    storage = open_storage(rbd_config)
    name = image_name("img")
    rbd.RBD().create(pool, f"{rbdstore.TEMP_PREFIX}{name}.{socket.gethostname()}.999999999",
                     1 << 20)  # what a killed import of a new image leaves (pid gone)
    assert name not in [i.name for i in storage.images()]
    storage.recover()
    assert not [n for n in rbd_names(pool) if name in n]


def upper_entries(pool: rados.Ioctx, name: str, tmp_path: Path) -> list[str]:
    """The root directory of the ext4 filesystem in RBD image ``name`` (read out whole)."""
    out = tmp_path / f"{name}.img"
    with rbd.Image(pool, name, read_only=True) as image:
        out.write_bytes(image.read(0, image.size()))
    listed = subprocess.run(["debugfs", "-R", "ls -p /", str(out)], capture_output=True,
                            text=True, check=True)
    names = [line.split("/")[5] for line in listed.stdout.splitlines() if line.count("/") > 5]
    return sorted(n for n in names if n not in (".", ".."))


def overlay_client(rbd_config: Config, inventory: Inventory, mac: str, image: str) -> Client:
    return add_client(rbd_config, inventory, mac, hostname=image_name("h"), image=image,
                      backend=open_backend(rbd_config), boot_method=BootMethod.OVERLAY,
                      overlay_size=16 << 20).client


def test_an_overlay_client_on_rbd_gets_an_rbd_upper_and_the_version_snapshot_read_only(
        rbd_config: Config, inventory: Inventory, tgtd: Tgtd, pool: rados.Ioctx,
        tmp_path: Path) -> None:
    name = image_name("img")
    image = build_builtin(rbd_config, name)
    client = overlay_client(rbd_config, inventory, MAC, name)
    upper = Location.parse(client.lun_path)
    pool_name = rbd_config.storage.rbd.pool
    backend = open_backend(rbd_config)
    assert [t.luns for t in backend.targets() if t.iqn == client.target_iqn] == [(
        Lun(ROOT_LUN, upper.name, Store.RBD),
        Lun(LOWER_LUN, f"{pool_name}/image.{name}@v1", Store.RBD, readonly=True))]
    with rbd.Image(pool, upper.image, read_only=True) as made:
        assert made.size() == 16 << 20 and made.metadata_get("conf_rbd_cache") == "false"
        assert rbdstore._allocated(made, include_parent=False) < made.size()  # data only
    assert upper_entries(pool, upper.image, tmp_path) == ["lost+found", "upper", "work"]
    read = read_lun(tgtd, client, LOWER_LUN, tmp_path / "lower.raw")
    assert sha(read) == sha(read_rbd(pool, f"image.{name}", image.size, "v1"))
    denied = qemu_io(tgtd, client, "write -P 0xaa 0 64k", lun=LOWER_LUN, write=True)
    assert denied.returncode != 0 and "write protected" in denied.stderr, denied
    wrote = qemu_io(tgtd, client, "write -P 0x55 8M 64k", write=True)
    assert wrote.returncode == 0, wrote.stderr
    assert read_rbd(pool, upper.image, 64 << 10 | 8 << 20)[8 << 20:] == b"\x55" * (64 << 10)
    assert not reconcile(rbd_config, inventory, backend).changes  # tgtd's show matches


def test_an_rbd_upper_reset_is_empty_and_the_old_one_is_removed(
        rbd_config: Config, inventory: Inventory, tgtd: Tgtd, pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    client = overlay_client(rbd_config, inventory, MAC, name)
    assert qemu_io(tgtd, client, "write -P 0x55 8M 64k", write=True).returncode == 0
    old = Location.parse(client.lun_path)
    reset = reset_upper(rbd_config, inventory, MAC, backend=open_backend(rbd_config)).client
    new = Location.parse(reset.lun_path)
    assert new.store is Store.RBD and new != old
    assert old.image not in rbd_names(pool)
    read = qemu_io(tgtd, reset, "read -P 0 8M 64k")
    assert read.returncode == 0 and "Pattern verification failed" not in read.stdout, read


def test_an_overlay_client_moves_to_another_rbd_version_and_only_then_frees_the_first(
        rbd_config: Config, inventory: Inventory, tgtd: Tgtd, pool: rados.Ioctx) -> None:
    name = image_name("img")
    build_builtin(rbd_config, name)
    build_builtin(rbd_config, name)
    client = overlay_client(rbd_config, inventory, MAC, f"{name}@1")
    with pytest.raises(Conflict, match="used by 1 client"):
        remove_image(rbd_config, inventory, f"{name}@1")
    backend = open_backend(rbd_config)
    set_lower(rbd_config, inventory, MAC, f"{name}@2", backend=backend)
    lower = [lun for t in backend.targets() if t.iqn == client.target_iqn for lun in t.luns
             if lun.number == LOWER_LUN]
    assert lower == [Lun(LOWER_LUN, f"{rbd_config.storage.rbd.pool}/image.{name}@v2",
                         Store.RBD, readonly=True)]
    remove_image(rbd_config, inventory, f"{name}@1")
    assert [i.ref for i in list_images(rbd_config, inventory) if i.name == name] == [
        f"{name}@2"]


def test_an_upper_made_by_a_killed_process_leaves_nothing_once_recovered(
        rbd_config: Config, pool: rados.Ioctx) -> None:
    storage = open_storage(rbd_config)
    upper = storage.root_location(image_name("h"))
    dead = f"{rbdstore.TEMP_PREFIX}{upper.image}.{socket.gethostname()}.999999999"
    rbd.RBD().create(pool, dead, 1 << 20)  # what a make_upper killed mid-write leaves
    storage.recover()
    assert dead not in rbd_names(pool) and upper.image not in rbd_names(pool)
    storage.make_upper(upper, 2 << 30)
    assert (storage.allocated(upper) or 0) < 64 << 20  # its data, in whole 4 MiB objects
    with pytest.raises(Conflict, match="already exists"):
        storage.make_upper(upper, 8 << 20)
    assert not [n for n in rbd_names(pool) if n.startswith(rbdstore.TEMP_PREFIX)
                and upper.image in n]


def test_a_root_whose_maker_was_killed_mid_clone_is_removed_though_it_cannot_be_opened(
        rbd_config: Config, pool: rados.Ioctx) -> None:
    storage = open_storage(rbd_config)
    root = storage.root_location(image_name("h"))
    rbd.RBD().create(pool, root.image, 1 << 20)
    with rbd.Image(pool, root.image) as image:
        header = f"rbd_header.{image.id()}"
    pool.remove_object(header)  # a clone killed between its directory entry and its header
    with pytest.raises(rbd.ImageNotFound):
        rbd.Image(pool, root.image, read_only=True)
    storage.remove_abandoned(root)
    assert root.image not in rbd_names(pool)
