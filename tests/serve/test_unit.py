"""The systemd unit: its golden text, systemd's own check of it, and its installation."""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from netboot.errors import NetbootError
from netboot.serve.unit import UNIT_NAME, install_unit, render_unit
from tests.conftest import needs_root
from tests.support.netlab import Lab, write_config

GOLDEN = Path(__file__).parent / "golden" / UNIT_NAME


def test_unit_matches_golden():
    assert render_unit(Path("/etc/netboot/netboot.yaml"), "/usr/bin/python3") == \
        GOLDEN.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_installed_unit_passes_systemd_analyze_verify(tmp_path):
    unit = install_unit(tmp_path / "netboot.yaml", tmp_path)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_installed_unit_runs_this_interpreter_with_the_config_and_is_world_readable(tmp_path):
    unit = install_unit(tmp_path / "netboot.yaml", tmp_path)
    assert f"ExecStart={sys.executable} -m netboot --config {tmp_path / 'netboot.yaml'} serve" \
        in unit.read_text().splitlines()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644


def test_a_unit_dir_that_is_not_there_is_an_error_naming_it(tmp_path):
    with pytest.raises(NetbootError, match=f"{tmp_path / 'nope'} is not a directory"):
        install_unit(tmp_path / "netboot.yaml", tmp_path / "nope")


def test_install_service_says_where_it_wrote_the_unit(initialised, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    done = initialised("install-service", "--unit-dir", str(units))
    assert f"wrote {units / UNIT_NAME}" in done.stdout


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in entries if b"=" in e)


@needs_root
def test_serve_tells_systemd_it_is_ready_pings_its_watchdog_and_says_it_stops(tmp_path):
    """`netboot serve` as systemd runs it (NOTIFY_SOCKET, WATCHDOG_USEC), split in two
    processes, in a namespace: READY once all serve, pings, STOPPING at SIGTERM; the
    network part it starts does not inherit the socket."""
    lab = Lab(tmp_path)
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        try:
            server, client = lab.netns("s"), lab.netns("c")
            interface, _ = lab.link(server, client, address_a="198.18.0.1/24")
            config = write_config(tmp_path / "netboot.yaml", interface, tmp_path)
            config.write_text(config.read_text().replace("target:\n",
                                                         "target:\n  manage: false\n", 1))
            serve = lab.serve(server, config, tmp_path / "serve.log",
                              env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
            assert sock.recv(4096).startswith(b"READY=1\nSTATUS=serving: ")
            assert sock.recv(4096) == b"WATCHDOG=1"
            parts = [p for p in children(serve.pid)  # (`ip netns exec` execs serve)
                     if "--network-part" in Path(f"/proc/{p}/cmdline").read_text()]
            assert parts, "serve did not split: the network part is missing"
            for pid in parts:  # (serve's own /proc environ is what it was started with)
                assert "NOTIFY_SOCKET" not in environment(pid)
            assert lab.stop(serve) == 0
            while (message := sock.recv(4096)) == b"WATCHDOG=1":
                pass
            assert message == b"STOPPING=1\nSTATUS=stopping"
        finally:
            lab.close()
