"""Debian golden images, the parts without a mirror: mirror config, cache key, package
set, modules layout, and the ext4 step on a small tree."""

import os
import subprocess

import pytest

from netboot.errors import ValidationError
from netboot.storage.osfiles import OsImageError
from netboot.storage.osimage import (
    BASE_PACKAGES,
    Mirror,
    build_debian_image,
    cache_key,
    make_ext4,
    modules_version,
    package_set,
    parse_mirror,
)

# The layout of Debian 12's /etc/apt/sources.list.d/debian.sources.
SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

MIRROR = Mirror("http://mirror.example/debian", "http://mirror.example/debian-security",
                ("main",), updates=True)


def test_mirror_is_read_from_deb822_sources():
    assert parse_mirror(SOURCES, "debian.sources") == MIRROR


def test_mirror_sources_follow_the_requested_suite():
    assert MIRROR.sources("trixie") == (
        "deb http://mirror.example/debian trixie main",
        "deb http://mirror.example/debian trixie-updates main",
        "deb http://mirror.example/debian-security trixie-security main",
    )


def test_disabled_and_source_only_entries_are_skipped():
    text = ("Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
            "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\n\n"
            "Types: deb\nURIs: http://on.example/debian\nSuites: bookworm\n")
    assert parse_mirror(text, "x.sources") == Mirror("http://on.example/debian")


def test_sources_without_a_mirror_name_the_file():
    with pytest.raises(OsImageError, match=r"x\.sources: no enabled"):
        parse_mirror("Types: deb-src\nURIs: http://a/\nSuites: bookworm\n", "x.sources")


def test_cache_key_ignores_package_order_and_repeats():
    sources = MIRROR.sources("bookworm")
    assert cache_key("bookworm", ("b", "a"), "mmdebstrap 1.3.5", sources) == \
        cache_key("bookworm", ("a", "b", "a"), "mmdebstrap 1.3.5", sources)


@pytest.mark.parametrize("change", ["suite", "packages", "version", "mirror"])
def test_cache_key_changes_with_each_input(change):
    args = {"suite": "bookworm", "packages": ("a",), "tool_version": "mmdebstrap 1.3.5",
            "sources": MIRROR.sources("bookworm")}
    other = dict(args)
    other.update({
        "suite": {"suite": "trixie"},
        "packages": {"packages": ("a", "vim")},
        "version": {"tool_version": "mmdebstrap 1.4.0"},
        "mirror": {"sources": Mirror("http://other.example/debian").sources("bookworm")},
    }[change])
    assert cache_key(**args) != cache_key(**other)


def test_package_set_is_base_plus_extras_sorted():
    packages = package_set(("vim", "systemd"), sanboot=False)
    assert packages == tuple(sorted({*BASE_PACKAGES, "vim"}))


def test_sanboot_package_set_adds_a_kernel_and_initramfs_tools():
    assert {"linux-image-amd64", "initramfs-tools"} <= set(package_set((), sanboot=True))


def test_bad_package_name_is_named():
    with pytest.raises(OsImageError, match="'vim;rm' is not a Debian package name"):
        package_set(("vim;rm",), sanboot=False)


def test_modules_dir_may_be_the_version_tree(tmp_path):
    (tmp_path / "6.1.0-28-cloud-amd64" / "kernel").mkdir(parents=True)
    assert modules_version(tmp_path / "6.1.0-28-cloud-amd64")[0] == "6.1.0-28-cloud-amd64"


def test_modules_dir_may_hold_one_version_tree(tmp_path):
    (tmp_path / "6.1.0-28-cloud-amd64" / "kernel").mkdir(parents=True)
    assert modules_version(tmp_path) == ("6.1.0-28-cloud-amd64", tmp_path / "6.1.0-28-cloud-amd64")


def test_modules_dir_with_two_kernels_is_refused(tmp_path):
    for version in ("6.1.0-27-amd64", "6.1.0-28-amd64"):
        (tmp_path / version / "kernel").mkdir(parents=True)
    with pytest.raises(OsImageError, match="expected one kernel's modules"):
        modules_version(tmp_path)


def test_ext4_image_holds_the_tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text("ID=debian\n")
    make_ext4(tree, tmp_path / "root.img", 96 << 20, "golden")
    out = subprocess.run(["debugfs", "-R", "cat /etc/os-release", str(tmp_path / "root.img")],
                         capture_output=True, text=True, check=True).stdout
    assert out == "ID=debian\n"


def test_too_small_image_size_says_how_much_is_needed(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(os.urandom(1 << 20))
    with pytest.raises(OsImageError, match=r"too small .* \(needs at least"):
        make_ext4(tree, tmp_path / "root.img", 8 << 20, "golden")
    assert not (tmp_path / "root.img").exists()



def test_image_name_with_a_slash_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValidationError, match=r"image name '\.\./x' is not valid"):
        build_debian_image("../x", "bookworm", (), None, None, tmp_path / "c",
                           tmp_path / "i" / "x.img", print)
    assert not (tmp_path / "i").exists()
