"""Boot files over a veth pair into a network namespace: the clients sit in the namespace.

The server side of the pair stays in this process's namespace and the server
binds its address; curl, tftp-hpa and atftp run in the namespace, from the
client's address (and from a second one, which must be refused private files;
tests/serve/test_boot_windows.py has the whole threat model with `netboot serve`).
"""

from __future__ import annotations

import os
import secrets
from ipaddress import IPv4Interface

import pytest

from netboot.host import iproute
from netboot.inventory.windows import BootFile
from tests.conftest import BASE_CONFIG, needs_root
from tests.support.bootserving import MAC, SECRET, Lan, sha256, start_served, stop_served

pytestmark = [needs_root, pytest.mark.root]


@pytest.fixture
def lan():
    suffix = secrets.token_hex(3)
    netns, host_end, ns_end = f"nbf{suffix}", f"nbfh{suffix}", f"nbfc{suffix}"
    third = secrets.randbelow(512)  # a random /24 in 198.18.0.0/15
    prefix = f"198.{18 + third // 256}.{third % 256}"
    iproute.add_netns(netns)
    try:
        iproute.add_veth(host_end, ns_end, peer_netns=netns)
        iproute.set_address(host_end, IPv4Interface(f"{prefix}.1/24"))
        iproute.set_address(ns_end, IPv4Interface(f"{prefix}.2/24"), netns=netns)
        iproute.ip("addr", "add", f"{prefix}.3/24", "dev", ns_end, netns=netns)
        yield Lan(netns, f"{prefix}.1", f"{prefix}.2", f"{prefix}.3")
    finally:
        iproute.ip("link", "delete", host_end, check=False)
        iproute.delete_netns(netns)


@pytest.fixture
def served(lan: Lan, make_config):
    base = BASE_CONFIG.replace("198.18.0.1", lan.server).replace(
        "198.18.0.0/24", lan.server.rsplit(".", 1)[0] + ".0/24")
    running = start_served(make_config(base=base), address=lan.server, client_ip=lan.client)
    (running.root / "big").write_bytes(os.urandom(32 << 20))
    yield running
    stop_served(running)


@pytest.mark.parametrize("blksize", [512, 1468, 8192])
def test_curl_in_a_namespace_downloads_intact(lan: Lan, served, blksize: int):
    result = lan.run("curl", "-sS", "--tftp-blksize", str(blksize),
                     f"tftp://{lan.server}:{served.tftp.port}/big")
    assert result.returncode == 0, result.stderr
    assert sha256(result.stdout) == sha256((served.root / "big").read_bytes())


def test_tftp_hpa_in_a_namespace_downloads_intact(lan: Lan, served, tmp_path):
    out = tmp_path / "got"
    result = lan.run("tftp", "-m", "binary", lan.server, str(served.tftp.port),
                     "-c", "get", "big", str(out))
    assert result.returncode == 0, result.stderr
    assert sha256(out.read_bytes()) == sha256((served.root / "big").read_bytes())


def test_atftp_in_a_namespace_downloads_intact(lan: Lan, served, tmp_path):
    out = tmp_path / "got"
    result = lan.run("atftp", "-g", "-r", "big", "-l", str(out), "--option", "blksize 1468",
                     lan.server, str(served.tftp.port))
    assert result.returncode == 0, result.stderr
    assert sha256(out.read_bytes()) == sha256((served.root / "big").read_bytes())


def test_the_client_gets_its_initrd_part_over_tftp_with_its_token(lan: Lan, served):
    token = served.open_window().tokens[BootFile.CLIENT_PART]
    result = lan.run("curl", "-sS", "--interface", lan.client,
                     f"tftp://{lan.server}:{served.tftp.port}/clients/{MAC}/{token}/client.img")
    assert result.returncode == 0 and SECRET.encode() in result.stdout


def test_another_address_is_refused_the_initrd_part_over_tftp(lan: Lan, served):
    result = lan.run("curl", "-sS", "--interface", lan.stranger,
                     f"tftp://{lan.server}:{served.tftp.port}/clients/{MAC}/client.img")
    assert result.returncode == 69, result.stderr  # curl's CURLE_TFTP_PERM: error 2
    assert SECRET.encode() not in result.stdout
    assert served.tftp.stats["denied"] == 1


def test_another_address_is_refused_the_initrd_part_over_http(lan: Lan, served):
    result = lan.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface",
                     lan.stranger, f"http://{lan.server}:{served.http.port}/clients/{MAC}/client.img")
    assert result.stdout == b"403"


def test_http_range_from_a_namespace(lan: Lan, served):
    result = lan.run("curl", "-sS", "-r", "100-199", "--interface", lan.client,
                     f"http://{lan.server}:{served.http.port}/big")
    assert result.stdout == (served.root / "big").read_bytes()[100:200]
