"""Installing a real Debian kernel package: layout, depmod, idempotence, --tree and the CLI.

The .deb comes from the apt index into the tests' shared download cache once (``apt-get download``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from netboot.host.files import sha256_file
from netboot.initramfs.kernel import KernelError, current, download, install, resolve
from tests.support.paths import LAB_CACHE


@pytest.fixture(scope="module")
def deb():
    return download("cloud-amd64", LAB_CACHE, print)


@pytest.fixture
def config(make_config):
    return make_config()


def test_both_flavours_resolve_to_their_own_versioned_package():
    assert resolve("cloud-amd64").package.endswith("-cloud-amd64")
    generic = resolve("amd64").package
    assert generic.endswith("-amd64") and "cloud" not in generic


def test_unknown_flavour_is_refused():
    with pytest.raises(KernelError, match="unknown kernel flavour"):
        resolve("riscv64")


def test_served_kernel_and_modules_come_from_the_package(config, deb):
    release = install(config, print, deb=deb)
    assert sha256_file(config.kernel_path) == sha256_file(release.vmlinuz)
    assert (release.modules / "modules.dep").stat().st_size > 0  # depmod ran
    assert current(config) == release


def test_second_install_of_the_same_package_is_a_no_op(config, deb):
    install(config, print, deb=deb)
    said = []
    install(config, said.append, deb=deb)
    assert any("already installed" in line for line in said)
    assert not any(line.startswith(("extracting", "depmod")) for line in said)


def test_extracted_tree_installs_like_the_package(config, deb, tmp_path):
    tree = tmp_path / "tree"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    release = install(config, print, tree=tree)
    assert sha256_file(config.kernel_path) == sha256_file(release.vmlinuz)
    assert (release.modules / "modules.dep").exists()


def test_tree_without_modules_is_refused(config, tmp_path):
    (tmp_path / "tree" / "boot").mkdir(parents=True)
    with pytest.raises(KernelError, match="lib/modules"):
        install(config, print, tree=tmp_path / "tree")


def test_no_kernel_yet_tells_what_to_run(config):
    with pytest.raises(KernelError, match="netboot kernel fetch"):
        current(config)


def test_cli_fetch_with_deb_prints_the_version(config, deb):
    out = subprocess.run(
        [sys.executable, "-m", "netboot", "--config", str(config.source), "kernel", "fetch",
         "--deb", str(deb)], capture_output=True, text=True, check=True)
    assert f"-> {config.kernel_path}" in out.stdout and "extracting" in out.stderr
