"""`netboot serve` as a user runs it: in a server namespace, with clients in a second one.

Shared by the serve wire tests of the checkout (tests/serve/test_boot_files.py) and of the
installed wheel (tests/test_package.py), which differ only in which `netboot` they run.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from netboot.boot.loaders import populate
from netboot.host import iproute
from netboot.serve.service import SERVE_READY
from tests.support.bootserving import Lan
from tests.support.paths import make_reachable


@pytest.fixture
def lan_pair() -> Iterator[tuple[str, Lan, str, str]]:
    """A server namespace and a client namespace joined by a veth pair on a random /24 of
    198.18.0.0/15 (so runs in parallel do not meet): yields the server namespace, the client
    side as a :class:`Lan` (the client at .10, a stranger at .11), the server's interface
    and the /24's first three octets. Both namespaces are removed afterwards."""
    suffix = secrets.token_hex(3)
    server_ns, client_ns = f"nbfs{suffix}", f"nbfc{suffix}"
    third = secrets.randbelow(512)
    prefix = f"198.{18 + third // 256}.{third % 256}"
    iproute.add_netns(server_ns)
    iproute.add_netns(client_ns)
    try:
        iproute.add_veth(f"nbs{suffix}", f"nbc{suffix}", netns=server_ns, peer_netns=client_ns)
        iproute.set_address(f"nbs{suffix}", IPv4Interface(f"{prefix}.1/24"), netns=server_ns)
        iproute.set_address(f"nbc{suffix}", IPv4Interface(f"{prefix}.10/24"), netns=client_ns)
        iproute.ip("addr", "add", f"{prefix}.11/24", "dev", f"nbc{suffix}", netns=client_ns)
        yield server_ns, Lan(client_ns, f"{prefix}.1", f"{prefix}.10", f"{prefix}.11"), \
            f"nbs{suffix}", prefix
    finally:
        iproute.delete_netns(server_ns)
        iproute.delete_netns(client_ns)


def wait_listening(netns: str, port: int, proto: str) -> None:
    """Return once something in ``netns`` listens on ``port`` (``proto`` "udp" or "tcp"),
    so a test's first request does not race the server's bind; fail after ten seconds."""
    flag = "-ulnH" if proto == "udp" else "-tlnH"
    for _ in range(200):
        out = subprocess.run(iproute.in_netns(netns, ["ss", flag]), capture_output=True,
                             text=True, check=False).stdout
        if f":{port} " in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {proto} {port}")


def boot_files_config(tmp_path: Path, interface: str, prefix: str, extra: str = "") -> Path:
    """Boot files only, from two TFTP worker processes: no DHCP, no tgtd of its own left
    behind, none adopted. The TFTP root gets the loaders and the state a stand-in kernel;
    ``extra`` is appended to the YAML. Returns the config file's path."""
    root, state = tmp_path / "tftproot", tmp_path / "state"
    populate(root)
    (state / "kernel").mkdir(parents=True)
    (state / "kernel" / "vmlinuz").write_bytes(b"kernel" * 1000)
    config = tmp_path / "netboot.yaml"
    config.write_text(f"server:\n  interface: {interface}\n  address: {prefix}.1\n"
                      f"  tftp_root: {root}\n  tftp_workers: 2\n"
                      f"dhcp:\n  subnet: {prefix}.0/24\n  mode: \"off\"\n"
                      f"storage:\n  state_dir: {state}\n"
                      "target:\n  manage: false\n" + extra)
    make_reachable(tmp_path)  # for the network part, run as server.user
    return config


def start_serve(netboot: str | Path, server_ns: str, config: Path, log: Path,
                env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.Popen:
    """Start ``netboot --config CONFIG serve`` with the executable ``netboot`` (the checkout's
    or an installed one) in ``server_ns``, its output to ``log``. ``env`` and ``cwd`` go to
    Popen: the installed package runs without the checkout's PYTHONPATH, outside it."""
    with log.open("wb") as out:
        return subprocess.Popen(iproute.in_netns(server_ns, [str(netboot), "--config",
                                                             str(config), "serve"]),
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def wait_serving(serve: subprocess.Popen, log: Path) -> None:
    """Return once ``serve`` logs that every service listens; fail, with its log, if it
    exits first or has not said so in thirty seconds."""
    for _ in range(600):
        if SERVE_READY in log.read_text():
            return
        assert serve.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError("serve did not say it serves")
