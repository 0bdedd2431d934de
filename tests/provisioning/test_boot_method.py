"""Boot method per client and the image layouts they need, through the real CLI.

The disk image here is a real MBR made by sfdisk in a file (what `image build
--debootstrap --sanboot` makes, without the Debian inside); the filesystem
image is the built-in one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from netboot.storage import images
from netboot.storage.images import ImageError, Layout, detect_layout

SAN_MAC = "52:54:00:aa:00:02"


PARTITION = 2048 * 512  # where make_disk's partition starts, in bytes


def make_disk(path: Path, size: int = 64 << 20) -> Path:
    """An MBR disk whose one partition holds an ext4 root with /etc/hostname in it."""
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(["sfdisk", "-q", str(path)], input="label: dos\nstart=2048, type=83\n",
                   text=True, check=True)
    tree = path.with_name("tree")
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("golden\n")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), "-E",
                    f"offset={PARTITION}", str(path), f"{(size - PARTITION) // 1024}k"],
                   check=True)
    return path


def partition_and_filesystem(path: Path) -> tuple[int, int]:
    """Bytes in the disk's partition (sfdisk) and in the filesystem inside it (dumpe2fs)."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(path)], capture_output=True,
                                      text=True, check=True).stdout)["partitiontable"]
    (partition,) = table["partitions"]
    header = subprocess.run(["dumpe2fs", "-h", f"{path}?offset={PARTITION}"],
                            capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    return (partition["size"] * 512,
            int(fields["Block count"]) * int(fields["Block size"]))


@pytest.fixture
def store(initialised) -> Path:
    """The image store: the built-in filesystem image and a disk image named ``disk``."""
    state = Path(yaml.safe_load(initialised.config.read_text())["storage"]["state_dir"])
    initialised("image", "build", "builtin", "--builtin")
    make_disk(state / "images" / "disk.img")
    return state / "images"


def test_layout_of_an_ext4_image_is_filesystem(store):
    assert detect_layout(store / "builtin@1.img") is Layout.FILESYSTEM


def test_layout_of_a_partitioned_image_is_disk(store):
    assert detect_layout(store / "disk.img") is Layout.DISK


def test_image_list_shows_each_layout(initialised, store):
    listed = {i["name"]: i["layout"] for i in
              json.loads(initialised("image", "list", "--json").stdout)}
    assert listed == {"builtin": "filesystem", "disk": "disk"}


def test_sanboot_client_is_stored_and_shown_with_its_method(initialised, store):
    initialised("client", "add", SAN_MAC, "--image", "disk", "--boot-method", "sanboot",
                "--size", "64M")
    shown = json.loads(initialised("client", "show", SAN_MAC, "--json").stdout)
    assert shown["boot_method"] == "sanboot" and shown["lun_size"] == 64 << 20
    assert "boot method    sanboot" in initialised("client", "show", SAN_MAC).stdout


def test_initramfs_is_the_default_method(initialised, store):
    initialised("client", "add", SAN_MAC, "--image", "builtin")
    assert json.loads(initialised("client", "show", SAN_MAC, "--json").stdout)[
        "boot_method"] == "initramfs"


def test_sanboot_with_a_filesystem_image_is_refused(initialised, store):
    err = initialised("client", "add", SAN_MAC, "--image", "builtin", "--boot-method",
                      "sanboot", expect=1).stderr
    assert "image builtin is an ext4 filesystem, not a bootable disk" in err
    assert "--sanboot" in err
    assert json.loads(initialised("client", "list", "--json").stdout) == []


def test_sanboot_without_an_image_is_refused(initialised, store):
    err = initialised("client", "add", SAN_MAC, "--boot-method", "sanboot", expect=1).stderr
    assert "--boot-method sanboot needs --image" in err


def test_initramfs_with_a_disk_image_is_refused(initialised, store):
    err = initialised("client", "add", SAN_MAC, "--image", "disk", expect=1).stderr
    assert "cannot mount: use --boot-method sanboot" in err


def test_sanboot_disk_grows_partition_and_filesystem_to_the_size_asked(initialised, store):
    """Without a loop device, and without resize2fs's truncation of the file cutting the
    end of the grown filesystem off (it ignores the partition's offset)."""
    initialised("client", "add", SAN_MAC, "--image", "disk", "--boot-method", "sanboot",
                "--size", "200M")
    shown = json.loads(initialised("client", "show", SAN_MAC, "--json").stdout)
    lun = Path(shown["lun_path"])
    assert lun.stat().st_size == shown["lun_size"] == 200 << 20
    assert partition_and_filesystem(lun) == ((200 << 20) - PARTITION,) * 2
    inside = f"{lun}?offset={PARTITION}"
    assert subprocess.run(["e2fsck", "-f", "-n", inside], capture_output=True).returncode == 0
    hostname = subprocess.run(["debugfs", "-R", "cat /etc/hostname", inside],
                              capture_output=True, text=True, check=True).stdout
    assert hostname == "golden\n"  # the image's files came along
    assert partition_and_filesystem(store / "disk.img") == ((64 << 20) - PARTITION,) * 2


def test_sanboot_disk_without_a_filesystem_to_grow_leaves_no_client(initialised, store):
    with open(store / "disk.img", "r+b") as f:  # wipe the ext4 superblock
        f.seek(PARTITION + 1024)
        f.write(bytes(1024))
    err = initialised("client", "add", SAN_MAC, "--image", "disk", "--boot-method", "sanboot",
                      "--size", "200M", expect=1).stderr
    assert "checking the root filesystem in" in err
    assert json.loads(initialised("client", "list", "--json").stdout) == []
    assert not list((store.parent / "luns").glob("*.img*"))


def test_unknown_method_is_a_usage_error(initialised, store):
    err = initialised("client", "add", SAN_MAC, "--boot-method", "pxe", expect=2).stderr
    assert "'pxe' is not one of 'initramfs', 'sanboot'" in err


def test_debootstrap_build_is_exclusive_with_builtin(initialised):
    err = initialised("image", "build", "x", "--debootstrap", "bookworm", "--builtin",
                      expect=1).stderr
    assert "give exactly one of --from-dir DIR, --builtin or --debootstrap SUITE" in err


def test_debootstrap_options_need_debootstrap(initialised):
    err = initialised("image", "build", "x", "--builtin", "--sanboot", expect=1).stderr
    assert "--packages, --files and --sanboot go with --debootstrap" in err


def test_debootstrap_build_needs_the_fetched_kernel(initialised):
    err = initialised("image", "build", "deb", "--debootstrap", "bookworm", expect=1).stderr
    assert "run 'netboot kernel fetch' first" in err


def test_debootstrap_build_is_refused_clearly_when_not_root(make_config, monkeypatch):
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(ImageError, match=r"needs root \(mmdebstrap --mode=root"):
        images.build_debian(make_config(), "deb", "bookworm", (), None, sanboot=False,
                            progress=print)


def test_sanboot_under_the_pxelinux_loader_is_refused(initialised, store):
    initialised.config.write_text(initialised.config.read_text().replace(
        "  loader: ipxe\n", "  loader: pxelinux\n", 1))
    err = initialised("client", "add", SAN_MAC, "--image", "disk", "--boot-method", "sanboot",
                      expect=1).stderr
    assert "--boot-method sanboot needs boot.loader: ipxe (it is pxelinux" in err


def test_debootstrap_build_names_a_bad_package_before_anything_runs(initialised):
    err = initialised("image", "build", "deb", "--debootstrap", "bookworm", "--packages",
                      "curl,Not_A_Package", expect=1).stderr
    assert "'Not_A_Package' is not a Debian package name" in err
