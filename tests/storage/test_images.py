"""Golden images: built with mke2fs -d, imported, listed, removed; checked with debugfs."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.errors import Conflict, NotFound, ValidationError
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from netboot.storage.clone import Method
from netboot.storage.images import (
    ImageError,
    build_builtin,
    build_image,
    get_image,
    import_image,
    list_images,
    remove_image,
)
from tests.conftest import needs_root
from tests.support.tgtfixtures import loop_fs  # noqa: F401  (fixture)


def debugfs(image: Path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def config(make_config) -> Config:
    return make_config()


@pytest.fixture
def inventory(config: Config):
    with Inventory(config.storage.database) as inv:
        yield inv


def test_build_puts_the_tree_in_an_ext4_image(config: Config, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("hello from the image\n")
    image = build_image(config, "plain", tree)
    assert debugfs(image.path, "cat /etc/motd") == "hello from the image\n"
    assert "ext4" in subprocess.run(["blkid", "-o", "value", "-s", "TYPE", str(image.path)],
                                    capture_output=True, text=True).stdout


def test_build_with_size_makes_an_image_of_that_size(config: Config, tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    assert build_image(config, "sized", tmp_path / "tree", 48 << 20).size == 48 << 20


def test_builtin_image_has_busybox_and_an_executable_init(config: Config) -> None:
    image = build_builtin(config)
    init = debugfs(image.path, "cat /sbin/init")
    assert "NETBOOT-ROOT-OK" in init and "netboot.stay=1" in init and "poweroff" in init
    assert "Mode:  0755" in debugfs(image.path, "stat /sbin/init")
    assert "busybox" in debugfs(image.path, "ls -l /bin")


def test_builtin_init_is_valid_shell(tmp_path: Path) -> None:
    from importlib import resources

    script = resources.files("netboot.storage") / "data" / "builtin-init.sh"
    done = subprocess.run(["busybox", "sh", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_building_a_name_again_makes_its_next_version_and_keeps_the_first(
        config: Config, tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    first = build_image(config, "twice", tmp_path / "tree")
    before = first.path.read_bytes()
    (tmp_path / "tree" / "release").write_text("2\n")
    second = build_image(config, "twice", tmp_path / "tree")
    assert (first.ref, second.ref) == ("twice@1", "twice@2")
    assert first.path.read_bytes() == before
    assert "release" in debugfs(second.path, "ls /") and "release" not in debugfs(first.path,
                                                                                   "ls /")


def test_a_name_alone_is_its_newest_version(config: Config, tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    build_image(config, "deb", tmp_path / "tree")
    build_image(config, "deb", tmp_path / "tree")
    assert (get_image(config, "deb").version, get_image(config, "deb@1").version) == (2, 1)


def test_a_version_that_does_not_exist_is_named(config: Config, tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    build_image(config, "deb", tmp_path / "tree")
    with pytest.raises(NotFound, match="image deb has no version 7"):
        get_image(config, "deb@7")


def test_a_version_that_is_not_a_number_is_refused(config: Config) -> None:
    with pytest.raises(ValidationError, match="number from 1"):
        get_image(config, "deb@two")


def test_an_image_file_made_before_versions_is_version_1(config: Config,
                                                         tmp_path: Path) -> None:
    config.storage.images.mkdir(parents=True)
    (tmp_path / "tree").mkdir()
    made = build_image(config, "old", tmp_path / "tree")
    made.path.rename(config.storage.images / "old.img")
    made.path.with_suffix(".json").unlink()
    assert [(i.ref, i.made) for i in list_images(config, None)] == [("old@1", "")]
    assert build_image(config, "old", tmp_path / "tree").ref == "old@2"


def test_a_client_records_the_version_it_was_cloned_from(config: Config,
                                                         inventory: Inventory) -> None:
    build_builtin(config)
    build_builtin(config)
    add_client(config, inventory, "52:54:00:00:00:07", image="builtin@1", size=40 << 20)
    add_client(config, inventory, "52:54:00:00:00:08", image="builtin", size=40 << 20)
    assert [c.image for c in inventory.clients()] == ["builtin@1", "builtin@2"]


def test_build_refuses_a_bad_name(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="image name"):
        build_image(config, "../escape", tmp_path)


def test_failed_build_leaves_no_file(config: Config, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(b"x" * (4 << 20))
    with pytest.raises(ImageError, match="mke2fs"):
        build_image(config, "toosmall", tree, 2 << 20)
    assert list(config.storage.images.iterdir()) == []


def test_import_refuses_a_file_that_is_not_ext4(config: Config, tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(8192))
    with pytest.raises(ValidationError, match="not an ext2/3/4"):
        import_image(config, "junk", junk)


def test_import_copies_the_image_in(config: Config, tmp_path: Path) -> None:
    source = build_builtin(config, "source")
    copied, _ = import_image(config, "copy", source.path)
    assert copied.path.read_bytes() == source.path.read_bytes()


@needs_root
def test_import_copies_an_image_from_another_filesystem(config: Config, loop_fs) -> None:
    # copy_file_range refuses ext4 to another ext4 (EXDEV, Linux 5.19 and later)
    elsewhere = loop_fs("ext4", "64M")
    source = build_builtin(config, "source")
    moved = elsewhere / "source.img"
    moved.write_bytes(source.path.read_bytes())
    copied, method = import_image(config, "copy", moved)
    assert method is Method.SPARSE
    assert copied.path.read_bytes() == source.path.read_bytes()


def test_list_shows_size_used_bytes_and_clients(config: Config, inventory: Inventory) -> None:
    build_builtin(config)
    add_client(config, inventory, "52:54:00:00:00:07", image="builtin", size=40 << 20)
    (image,) = list_images(config, inventory)
    assert image.size == 32 << 20
    assert 0 < image.used < image.size
    assert image.clients == ("node-525400000007",)


def test_list_shows_every_version_how_it_was_made_and_its_own_clients(
        config: Config, inventory: Inventory, tmp_path: Path) -> None:
    build_builtin(config)
    source = build_builtin(config, "source")
    import_image(config, "builtin", source.path)
    add_client(config, inventory, "52:54:00:00:00:07", image="builtin@1", size=40 << 20)
    listed = [(i.ref, i.made.split(" (")[0], i.clients) for i in list_images(config, inventory)
              if i.name == "builtin"]
    assert listed == [("builtin@1", "built-in", ("node-525400000007",)),
                      ("builtin@2", f"import {source.path}", ())]


def test_removing_a_version_in_use_is_refused_and_another_version_goes(
        config: Config, inventory: Inventory) -> None:
    build_builtin(config)
    second = build_builtin(config)
    add_client(config, inventory, "52:54:00:00:00:07", image="builtin@1", size=40 << 20)
    with pytest.raises(Conflict, match="builtin@1 is used by 1 client"):
        remove_image(config, inventory, "builtin@1")
    remove_image(config, inventory, "builtin@2")
    assert not second.path.exists()
    assert [i.ref for i in list_images(config, inventory)] == ["builtin@1"]


def test_removing_a_name_removes_every_version(config: Config, inventory: Inventory) -> None:
    build_builtin(config)
    build_builtin(config)
    assert [i.ref for i in remove_image(config, inventory, "builtin")] == ["builtin@1",
                                                                           "builtin@2"]
    assert list_images(config, inventory) == []


def test_remove_is_refused_while_a_client_uses_it(config: Config, inventory: Inventory) -> None:
    build_builtin(config)
    add_client(config, inventory, "52:54:00:00:00:07", image="builtin", size=40 << 20)
    with pytest.raises(Conflict, match="node-525400000007"):
        remove_image(config, inventory, "builtin")


def test_remove_deletes_an_unused_image(config: Config, inventory: Inventory) -> None:
    image = build_builtin(config)
    remove_image(config, inventory, "builtin")
    assert not image.path.exists()


def test_stale_temp_file_is_removed_by_the_next_build(config: Config, tmp_path: Path) -> None:
    config.storage.images.mkdir(parents=True)
    stale = config.storage.images / ".old.img.tmp-999999999"
    stale.write_bytes(b"half")
    (tmp_path / "tree").mkdir()
    build_image(config, "next", tmp_path / "tree")
    assert not stale.exists()
