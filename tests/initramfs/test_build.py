"""The base image built from a real Debian kernel package: entries, closure, chroot, bytes.

The kernel .debs and the arm64 packages are downloaded once into the cache both test
folders share (``apt-get download``); everything after that is local.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from netboot.arch import FACTS, Arch
from netboot.config import OnFail
from netboot.configfile import parse_config
from netboot.initramfs.build import (
    PROGRAMS,
    Compression,
    InitSettings,
    Manifest,
    build,
    choose_compression,
    compress,
    pad4,
    program_component,
    render_init,
)
from netboot.initramfs.elf import is_elf, machine, shared_libraries
from netboot.initramfs.kernel import current, download, install
from netboot.initramfs.modules import parse_modules_dep
from netboot.initramfs.sysroot import Sysroot
from tests.support.paths import LAB_CACHE

GOLDEN_INIT = Path(__file__).parent / "golden" / "init"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chroot")


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """A config with the cloud kernel installed and the base image built once."""
    root = tmp_path_factory.mktemp("image")
    text = (f"server:\n  address: 198.18.0.1\ndhcp:\n  subnet: 198.18.0.0/24\n"
            f"storage:\n  state_dir: {root / 'state'}\n")
    (root / "netboot.yaml").write_text(text)
    config = parse_config(text, str(root / "netboot.yaml"))
    deb = download("cloud-amd64", LAB_CACHE, print)
    install(config, print, deb=deb)
    manifest = build(config, print)
    unpacked, listing = _unpack(manifest, root / "unpacked")
    return config, manifest, unpacked, listing


def _unpack(manifest: Manifest, directory: Path) -> tuple[Path, str]:
    """The built image unpacked into ``directory``, and its ``cpio -itv`` listing."""
    directory.mkdir()
    image = Path(manifest.path).read_bytes()
    data = subprocess.run(["zstd", "-dc"], input=image[:len(image) - manifest.padding],
                          capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet"], input=data, cwd=directory, check=True)
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=data, capture_output=True,
                             check=True).stdout.decode()
    return directory, listing


@pytest.fixture(scope="module")
def arm64_state(state):
    """The same state dir with the arm64 cloud kernel and its base image besides amd64's,
    the arm64 packages kept in the shared cache between runs (the ARM64 lab's too)."""
    config, _, unpacked, _ = state
    config = dataclasses.replace(config, storage=dataclasses.replace(
        config.storage, cache_dir=LAB_CACHE))
    deb = download("cloud-arm64", config.storage.cache, print)
    install(config, print, deb=deb, arch=Arch.ARM64)
    manifest = build(config, print, arch=Arch.ARM64)
    arm64, _ = _unpack(manifest, unpacked.parent / "unpacked-arm64")
    return config, manifest, arm64


def _elf_machines(tree: Path) -> dict[str, int]:
    """Every ELF file under ``tree`` (programs, libraries, modules): its e_machine."""
    found = {}
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                head = f.read(20)
            if is_elf(head):
                found[str(path.relative_to(tree))] = machine(head)
    return found


def test_each_architectures_image_holds_only_its_own_elf_files(state, arm64_state):
    _, _, amd64, _ = state
    config, manifest, arm64 = arm64_state
    for tree, arch in ((amd64, Arch.AMD64), (arm64, Arch.ARM64)):
        machines = _elf_machines(tree)
        assert {"bin/busybox", "sbin/iscsistart", "sbin/resize2fs"} <= machines.keys()
        assert any(name.endswith(".ko") for name in machines)  # the kernel's modules too
        assert {name: m for name, m in machines.items() if m != FACTS[arch].elf_machine} == {}
    assert manifest.arch == "arm64" and Path(manifest.path) == config.initramfs_file(Arch.ARM64)
    assert config.initramfs_file(Arch.ARM64) != config.initramfs_file(Arch.AMD64)


def test_arm64_image_has_arm64s_loader_libraries_and_applets(arm64_state):
    _, manifest, arm64 = arm64_state
    assert (arm64 / "lib" / "ld-linux-aarch64.so.1").is_file()
    assert (arm64 / "usr" / "lib" / "aarch64-linux-gnu" / "libcrypto.so.3").is_file()
    assert os.readlink(arm64 / "bin" / "sh") == "/bin/busybox"
    assert os.readlink(arm64 / "bin" / "switch_root") == "/bin/busybox"
    assert any(p.startswith("busybox-static ") for p in manifest.packages)
    assert (arm64 / "lib" / "modules" / manifest.kernel_version).is_dir()
    assert manifest.kernel_version.endswith("-cloud-arm64")


def entries(listing: str) -> dict[str, list[str]]:
    """``cpio -itv`` lines by name (symlink arrows cut off)."""
    out = {}
    for line in listing.splitlines():
        fields = line.split()
        name = fields[8] if len(fields) > 8 else fields[-1]
        out[name] = fields
    return out


def test_every_entry_is_owned_by_root(state):
    _, _, _, listing = state
    assert {(f[2], f[3]) for f in entries(listing).values()} == {("root", "root")}


def test_init_is_an_executable_file(state):
    _, _, _, listing = state
    assert entries(listing)["init"][0] == "-rwxr-xr-x"


def test_dev_console_is_a_character_device_5_1(state):
    _, _, unpacked, _ = state
    st = (unpacked / "dev" / "console").lstat()
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (5, 1)


def test_busybox_applets_link_to_busybox(state):
    _, _, unpacked, _ = state
    assert os.readlink(unpacked / "bin" / "sh") == "/bin/busybox"
    assert os.readlink(unpacked / "sbin" / "switch_root") == "/bin/busybox"


def test_iscsi_tcp_and_all_its_dependencies_are_in_the_image(state):
    config, _, unpacked, _ = state
    release = current(config)
    path, deps = parse_modules_dep((release.modules / "modules.dep").read_text())["iscsi_tcp"]
    modules = unpacked / "lib" / "modules" / release.version
    assert [p for p in (path, *deps) if not (modules / p).is_file()] == []


def test_every_module_in_the_image_has_its_dependencies(state):
    config, _, unpacked, _ = state
    modules = unpacked / "lib" / "modules" / current(config).version
    index = parse_modules_dep((modules / "modules.dep").read_text())
    assert len(index) > 10
    assert [d for _, deps in index.values() for d in deps if not (modules / d).is_file()] == []


def test_missing_nic_drivers_of_the_cloud_flavour_are_noted(state):
    _, manifest, _, _ = state
    assert any("skipped" in n and "igb" in n for n in manifest.notes)


def test_iscsi_is_loaded_at_once_nic_drivers_by_hardware_filesystems_on_demand(state):
    _, _, unpacked, _ = state
    load = (unpacked / "etc" / "netboot" / "modules.load").read_text().split()
    nic = (unpacked / "etc" / "netboot" / "modules.nic").read_text().split()
    assert "iscsi_tcp" in load and "virtio_net" in nic
    assert "virtio_net" not in load and "xfs" not in load + nic


@needs_root
def test_iscsistart_runs_in_the_unpacked_image(state):
    _, _, unpacked, _ = state
    out = subprocess.run(["chroot", str(unpacked), "/sbin/iscsistart", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("iscsistart version")


def test_resize2fs_and_all_its_libraries_are_in_the_image(state):
    _, _, unpacked, _ = state
    loader, libraries = shared_libraries(Path("/sbin/resize2fs"))
    wanted = [Path("/sbin/resize2fs"), Path(loader), *libraries]
    assert {"libext2fs.so.2", "libe2p.so.2"} <= {p.name for p in libraries}
    assert [p for p in wanted if not (unpacked / str(p).lstrip("/")).is_file()] == []


@needs_root
def test_resize2fs_runs_in_the_unpacked_image(state):
    _, _, unpacked, _ = state
    # Without arguments it prints its version and usage (exit 1): its libraries loaded.
    done = subprocess.run(["chroot", str(unpacked), "/sbin/resize2fs"], capture_output=True,
                          text=True)
    assert done.stderr.startswith("resize2fs 1.") and "Usage:" in done.stderr


@needs_root
def test_init_parses_with_the_image_busybox(state):
    _, _, unpacked, _ = state
    subprocess.run(["chroot", str(unpacked), "/bin/busybox", "sh", "-n", "/init"], check=True)


def test_image_length_is_a_multiple_of_4(state):
    _, manifest, _, _ = state
    assert manifest.size % 4 == 0 and Path(manifest.path).stat().st_size == manifest.size


def test_rebuild_comes_from_the_cache(state):
    config, manifest, _, _ = state
    again = build(config, print)
    assert again.cached and again.digest == manifest.digest


def test_cli_build_prints_the_manifest_as_json(state):
    config, manifest, _, _ = state
    out = subprocess.run([sys.executable, "-m", "netboot", "--config", str(config.source),
                          "initramfs", "build", "--json"], capture_output=True, text=True,
                         check=True).stdout
    printed = json.loads(out)
    assert (printed["digest"], printed["size"]) == (manifest.digest, manifest.size)


def test_two_builds_without_cache_are_byte_identical(state, tmp_path):
    config, manifest, _, _ = state
    first = Path(manifest.path).read_bytes()
    other = dataclasses.replace(config, storage=dataclasses.replace(
        config.storage, cache_dir=tmp_path / "cache"))
    again = build(other, print)
    assert not again.cached and Path(again.path).read_bytes() == first


def test_a_second_server_with_its_own_state_dir_builds_the_same_bytes(state, tmp_path):
    """Two servers of one boot VLAN (their own address and state directory, the same
    kernel package) hand clients the same base initramfs, whichever answers."""
    _, manifest, _, _ = state
    text = (f"server:\n  address: 198.18.0.2\ndhcp:\n  subnet: 198.18.0.0/24\n"
            f"storage:\n  state_dir: {tmp_path / 'server-b'}\n")
    other = parse_config(text, str(tmp_path / "b.yaml"))
    install(other, print, deb=download("cloud-amd64", LAB_CACHE, print))
    again = build(other, print)
    assert again.digest == manifest.digest
    assert Path(again.path).read_bytes() == Path(manifest.path).read_bytes()


def test_changed_module_list_changes_the_hash(state):
    config, manifest, _, _ = state
    other = dataclasses.replace(config, boot=dataclasses.replace(
        config.boot, extra_modules=("loop",)))
    assert build(other, print, Compression.GZIP).digest != manifest.digest


def test_program_component_leaves_out_libraries_already_present():
    resize2fs = next(p for p in PROGRAMS if p.path.name == "resize2fs")
    libc = next(str(lib).lstrip("/") for lib in shared_libraries(resize2fs.path)[1]
                if lib.name == "libc.so.6")
    names = [e.name for e in program_component(resize2fs, Sysroot(Arch.AMD64, Path("/")),
                                               {libc}).entries]
    assert names[0] == "sbin/resize2fs" and libc not in names
    assert any(n.endswith("/libext2fs.so.2") for n in names)


def test_zstd_is_chosen_when_the_kernel_unpacks_it():
    options = {"CONFIG_RD_GZIP": "y", "CONFIG_RD_ZSTD": "y"}
    assert choose_compression(Compression.AUTO, options, have_zstd=True) is Compression.ZSTD


def test_gzip_is_chosen_without_zstd_support():
    options = {"CONFIG_RD_GZIP": "y"}
    assert choose_compression(Compression.AUTO, options, have_zstd=True) is Compression.GZIP


def test_gzip_output_is_reproducible():
    data = b"070701" + bytes(range(200))
    assert compress(data, Compression.GZIP) == compress(data, Compression.GZIP)


def test_padding_brings_any_length_to_a_multiple_of_4():
    assert [len(pad4(b"x" * n)) for n in range(1, 6)] == [4, 4, 4, 4, 8]


def test_configured_onfail_is_the_default_in_init():
    assert "\nONFAIL='shell'\n" in render_init("6.1.0-99-test-amd64", InitSettings(OnFail.SHELL))


def test_rendered_init_matches_golden():
    assert render_init("6.1.0-99-test-amd64", InitSettings()) == GOLDEN_INIT.read_text()

