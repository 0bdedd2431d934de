"""A real Debian 12 golden image, built with mmdebstrap from this machine's Debian mirror.

Marked ``mirror``: it downloads ~70 MB and takes about a minute cold (deselect
with ``-m 'not mirror'``). The mmdebstrap tarball goes to the download cache the tests
share (the Debian lab's `image build deb12` makes the same one); every other test
here reuses it, which is also what the cache test checks.
"""

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from netboot.boot.clientpart import render_client_conf
from netboot.configfile import parse_config
from netboot.storage.osfiles import OsImageError
from netboot.storage.osimage import build_debian_image, prepare_debian_tree
from tests.conftest import SAMPLE_CLIENT, needs_root
from tests.support.paths import LAB_CACHE

pytestmark = [needs_root, pytest.mark.mirror]

VERSION = "6.1.0-netboot-test"
CLIENT = replace(SAMPLE_CLIENT, image="deb12")


class Built:
    def __init__(self, root: Path) -> None:
        self.cache = LAB_CACHE
        self.images = root / "images"
        self.modules = root / "modules"
        (self.modules / VERSION / "kernel").mkdir(parents=True)
        (self.modules / VERSION / "modules.order").write_text("")
        self.messages: list[str] = []
        self.image = self.build()

    def build(self, modules: Path | None = None) -> Path:
        return build_debian_image("deb12", "bookworm", (), None, modules or self.modules,
                                  self.cache, self.images / "deb12.img", self.messages.append)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    return Built(tmp_path_factory.mktemp("osimage"))


def debugfs(image: Path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True,
                          text=True, check=True).stdout


def test_image_has_no_ssh_host_keys(built):
    listing = debugfs(built.image, "ls -l /etc/ssh")
    assert "sshd_config" in listing and "ssh_host_" not in listing


def test_image_machine_id_is_empty(built):
    assert "Size: 0" in debugfs(built.image, "stat /etc/machine-id")


@pytest.mark.parametrize("link", [
    "sysinit.target.wants/netboot-identity.service",
    "sysinit.target.wants/iscsid.service",
    "multi-user.target.wants/netboot-iscsi-root.service",
    "multi-user.target.wants/netboot-ssh-keygen.service",
    "multi-user.target.wants/netboot-os-up.service",
])
def test_image_units_are_enabled(built, link):
    directory, unit = link.split("/")
    assert f" {unit} " in debugfs(built.image, f"ls /etc/systemd/system/{directory}") + " "


def test_image_has_the_served_kernels_modules_indexed(built):
    assert "modules.dep" in debugfs(built.image, f"ls /usr/lib/modules/{VERSION}")


def test_image_keeps_no_build_host_identity(built):
    assert "not found" in subprocess.run(
        ["debugfs", "-R", "stat /etc/hostname", str(built.image)],
        capture_output=True, text=True).stderr
    assert "GenerateName=yes" in debugfs(built.image, "cat /etc/iscsi/initiatorname.iscsi")


def test_second_build_reuses_the_cached_tarball(built):
    tarballs = list((built.cache / "debian").glob("*.tar.zst"))
    stamp = tarballs[0].stat().st_mtime_ns
    built.messages.clear()
    built.build()
    assert list((built.cache / "debian").glob("*.tar.zst")) == tarballs
    assert tarballs[0].stat().st_mtime_ns == stamp
    assert any(m.startswith("cache: reusing") for m in built.messages)
    assert not any(m.startswith("mmdebstrap:") for m in built.messages)


def test_failed_build_leaves_no_image_and_no_leftovers(built, tmp_path):
    (tmp_path / "a" / "kernel").mkdir(parents=True)
    (tmp_path / "b" / "kernel").mkdir(parents=True)
    before = sorted(p.name for p in built.images.iterdir())
    built.images.joinpath("deb12.img").rename(built.images / "keep.img")
    try:
        with pytest.raises(OsImageError, match="expected one kernel's modules"):
            built.build(modules=tmp_path)
        assert sorted(p.name for p in built.images.iterdir()) == ["keep.img"]
    finally:
        built.images.joinpath("keep.img").rename(built.images / "deb12.img")
    assert sorted(p.name for p in built.images.iterdir()) == before


@pytest.fixture(scope="module")
def booted_tree(built, tmp_path_factory) -> Path:
    """The prepared tree after its boot-time scripts ran against a real client.conf,
    in their own UTS and network namespaces (hostname, iscsid's abstract socket)."""
    work = tmp_path_factory.mktemp("booted")
    tree, files = work / "tree", work / "files"
    (files / "etc").mkdir(parents=True)
    (files / "etc" / "netboot-release").write_text("2\n")
    (files / "lib" / "netboot-test").mkdir(parents=True)  # /lib is a link to usr/lib
    (files / "lib" / "netboot-test" / "note").write_text("added\n")
    (files / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    prepare_debian_tree(tree, "bookworm", (), built.modules, built.cache, lambda m: None,
                        files=files)
    config = parse_config("server:\n  address: 198.18.0.1\ndhcp:\n  subnet: 198.18.0.0/24\n",
                          "netboot.yaml")
    conf = tree / "run/netboot/client.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(render_client_conf(config, CLIENT))
    conf.chmod(0o600)
    for script in ("identity", "iscsi-root"):
        subprocess.run(["unshare", "--uts", "--net", "chroot", str(tree),
                        f"/usr/lib/netboot/{script}"], check=True, capture_output=True)
    return tree


def test_identity_sets_hostname_from_client_conf(booted_tree):
    assert (booted_tree / "etc/hostname").read_text() == "web1\n"
    assert "127.0.1.1\tweb1\n" in (booted_tree / "etc/hosts").read_text()


def test_identity_sets_initiator_name_from_client_conf(booted_tree):
    assert (booted_tree / "etc/iscsi/initiatorname.iscsi").read_text() == \
        f"InitiatorName={CLIENT.initiator_iqn}\n"


def test_identity_keeps_network_managers_off_the_boot_nic(booted_tree):
    network = (booted_tree / "run/systemd/network/10-netboot-boot-nic.network").read_text()
    assert f"MACAddress={CLIENT.mac}\n" in network and "Unmanaged=yes\n" in network
    assert f"unmanaged-devices=mac:{CLIENT.mac}\n" in (
        booted_tree / "run/NetworkManager/conf.d/10-netboot-boot-nic.conf").read_text()


def test_root_node_record_has_mutual_chap_onboot_startup_and_root_timers(booted_tree):
    record = subprocess.run(
        ["unshare", "--net", "chroot", str(booted_tree), "iscsiadm", "-m", "node", "-T",
         CLIENT.target_iqn, "-p", "198.18.0.1:3260,1"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    for line in ["node.startup = onboot", "node.session.auth.authmethod = CHAP",
                 f"node.session.auth.username = {CLIENT.chap_user}",
                 f"node.session.auth.username_in = {CLIENT.mutual_user}",
                 "node.session.timeo.replacement_timeout = 86400",
                 "node.conn[0].timeo.noop_out_interval = 5"]:
        assert line in record


def test_root_node_record_is_root_only(booted_tree):
    record = next((booted_tree / "etc/iscsi/nodes").rglob("default"))
    assert record.stat().st_mode & 0o077 == 0


def test_added_files_land_in_the_root_owned_by_root(booted_tree):
    release = booted_tree / "etc/netboot-release"
    assert release.read_text() == "2\n"
    assert (release.stat().st_uid, release.stat().st_gid) == (0, 0)


def test_added_files_follow_the_roots_directory_links(booted_tree):
    assert (booted_tree / "lib").is_symlink()
    assert (booted_tree / "usr/lib/netboot-test/note").read_text() == "added\n"


def test_added_files_bring_no_identity(booted_tree):
    assert (booted_tree / "etc/machine-id").read_text() == ""
