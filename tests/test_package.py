"""The installed package: a wheel built from the checkout, installed into a fresh venv, works
with nothing of the checkout in reach (templates, initramfs data and the CLI all come with it),
up to building the base initramfs and serving it with a client's files over a wire.

The wheel is built offline with this venv's setuptools; the new venv gets only the wheel, and
sees the runtime dependencies through a .pth naming this venv's site-packages (a folder
named by a .pth is not a site folder, so the editable install's own .pth there stays unread).
"""
# ruff: noqa: F811  (pytest fixtures are imported from tests.support.serving and requested by name)

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from netboot.initramfs.kernel import download
from tests.conftest import BASE_CONFIG, SAMPLE_CLIENT, needs_root
from tests.support import REPO
from tests.support.bootserving import Lan
from tests.support.paths import LAB_CACHE, make_reachable
from tests.support.serving import (  # noqa: F401  (fixtures)
    boot_files_config,
    lan_pair,
    start_serve,
    wait_serving,
)

# What setuptools reads to build the wheel; the rest of the checkout stays out of reach.
BUILD_INPUTS = ("pyproject.toml", "README.md", "netboot")
GOLDEN_CLIENT_CONF = REPO / "tests" / "boot" / "golden" / "client.conf"
GOLDEN_INIT = REPO / "tests" / "initramfs" / "golden" / "init"

CLIENT_PART = """\
import json, sys
from ipaddress import IPv4Address
from netboot.boot.clientpart import build_client_part
from netboot.configfile import parse_config
from netboot.inventory.clients import BootMethod, Client
config_text, client = json.load(sys.stdin)
client = Client(**client | {"ip": IPv4Address(client["ip"]),
                            "boot_method": BootMethod(client["boot_method"])})
sys.stdout.buffer.write(build_client_part(parse_config(config_text), client))
"""

INIT = """\
from netboot.initramfs.build import InitSettings, render_init
print(render_init("6.1.0-99-test-amd64", InitSettings()), end="")
"""


def outside_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH, which may name the checkout (it does for
    a work tree's tests)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run(argv: list[str | Path], cwd: Path, stdin: bytes = b"") -> bytes:
    """Run ``argv`` in ``cwd`` with :func:`outside_env` and return its output."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, cwd=cwd, env=outside_env(),
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@dataclass(frozen=True)
class Installed:
    """A venv holding the installed wheel, run from a folder outside the checkout."""

    venv: Path
    cwd: Path

    def run(self, argv: list[str | Path], stdin: bytes = b"") -> bytes:
        return run(argv, self.cwd, stdin)

    def python(self, code: str, stdin: bytes = b"") -> bytes:
        return self.run([self.venv / "bin" / "python", "-c", code], stdin)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    work = tmp_path_factory.mktemp("package")
    source, dist, venv = work / "source", work / "dist", work / "venv"
    source.mkdir()
    for name in BUILD_INPUTS:  # a copy, so the build's build/ and egg-info stay out of REPO
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, source],
        work)
    wheel, = dist.glob("netboot-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", venv], work)
    run([*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel],
        work)
    installed = Installed(venv, work)
    site = installed.python("import sysconfig; print(sysconfig.get_path('purelib'))")
    (Path(site.decode().strip()) / "dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n")
    found = installed.python("import netboot; print(netboot.__file__)")
    assert Path(found.decode().strip()).is_relative_to(venv), found
    return installed


def test_client_part_from_the_installed_package_holds_the_clients_conf(installed, tmp_path):
    config = BASE_CONFIG.format(tftp_root=tmp_path / "tftproot", state_dir=tmp_path / "state")
    client = asdict(SAMPLE_CLIENT) | {"ip": str(SAMPLE_CLIENT.ip)}
    part = installed.python(CLIENT_PART, json.dumps([config, client]).encode())
    conf = installed.run(["cpio", "-i", "--quiet", "--to-stdout", "etc/netboot/client.conf"],
                         part)
    assert conf.decode() == GOLDEN_CLIENT_CONF.read_text()


def test_init_from_the_installed_package_matches_golden(installed):
    assert installed.python(INIT).decode() == GOLDEN_INIT.read_text()


def test_installed_cli_prints_its_help(installed):
    out = installed.run([installed.venv / "bin" / "netboot", "--help"]).decode()
    assert out.startswith("Usage: netboot")


def test_installed_cli_writes_the_systemd_unit_running_its_own_interpreter(installed, tmp_path):
    config = tmp_path / "netboot.yaml"
    config.write_text(BASE_CONFIG.format(tftp_root=tmp_path / "tftproot",
                                         state_dir=tmp_path / "state"))
    installed.run([installed.venv / "bin" / "netboot", "--config", config, "install-service",
                   "--unit-dir", tmp_path])
    unit = (tmp_path / "netboot.service").read_text().splitlines()
    assert f"ExecStart={installed.venv / 'bin' / 'python'} -m netboot --config {config} serve" \
        in unit


def http_get(lan: Lan, url: str) -> bytes:
    """``url`` as the client of ``lan`` fetches it (from its own address)."""
    got = lan.run("curl", "-sSf", "--interface", lan.client, url)
    assert got.returncode == 0, got.stderr.decode()
    return got.stdout


@needs_root
@pytest.mark.root
def test_installed_cli_builds_the_base_initramfs_and_serves_it_with_a_clients_files(
        installed, lan_pair, tmp_path):
    """Every step by the installed `netboot`: kernel fetch, initramfs build (its /init
    template, modules.txt and udhcpc.script are package data), client add, then serve in one
    namespace while the client, in another, fetches over HTTP its script, its part, and the
    kernel and base image the commands before reported."""
    server_ns, lan, interface, prefix = lan_pair
    netboot = installed.venv / "bin" / "netboot"
    config = boot_files_config(tmp_path, interface, prefix)
    make_reachable(installed.venv)  # serve's network part and its workers run as server.user
    deb = download("cloud-amd64", LAB_CACHE, print)
    kernel = json.loads(installed.run([netboot, "--config", config, "kernel", "fetch", "--deb",
                                       deb, "--json"]))
    image = json.loads(installed.run([netboot, "--config", config, "initramfs", "build",
                                      "--json"]))
    mac = SAMPLE_CLIENT.mac
    installed.run([netboot, "--config", config, "client", "add", mac, "--ip", lan.client])
    log = tmp_path / "serve.log"
    serve = start_serve(netboot, server_ns, config, log, env=outside_env(), cwd=installed.cwd)
    try:
        wait_serving(serve, log)
        script = http_get(lan, f"http://{lan.server}:8080/clients/{mac}/boot.ipxe").decode()
        part = http_get(lan, f"http://{lan.server}:8080/clients/{mac}/client.img")
        conf = installed.run(["cpio", "-i", "--quiet", "--to-stdout", "etc/netboot/client.conf"],
                             part).decode().splitlines()
        kernel_url, = re.findall(r"^kernel (\S+)", script, re.M)
        image_url, = re.findall(r"^initrd --name initramfs.img (\S+)", script, re.M)
        assert http_get(lan, kernel_url) == Path(kernel["vmlinuz"]).read_bytes()
        assert http_get(lan, image_url) == Path(image["path"]).read_bytes()
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0, log.read_text()
    assert f"NETBOOT_MAC='{mac}'" in conf and f"NETBOOT_IP='{lan.client}'" in conf
