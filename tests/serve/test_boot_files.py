"""`netboot serve` as a user runs it, in a namespace, with clients in a second namespace."""
# ruff: noqa: F811  (pytest fixtures are imported from tests.support.serving and requested by name)

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import needs_root
from tests.support.bootserving import Lan, sha256
from tests.support.openapi import check_answer
from tests.support.serving import (  # noqa: F401  (fixtures)
    boot_files_config,
    lan_pair,
    start_serve,
    wait_listening,
    wait_serving,
)

pytestmark = [needs_root, pytest.mark.root]
NETBOOT = str(Path(sys.executable).with_name("netboot"))
MAC = "52:54:00:12:34:56"


def test_serve_gives_a_client_its_loader_script_and_initrd_part(lan_pair, tmp_path: Path):
    server_ns, lan, interface, prefix = lan_pair
    config = boot_files_config(tmp_path, interface, prefix)
    root = tmp_path / "tftproot"
    subprocess.run([NETBOOT, "--config", str(config), "client", "add", MAC, "--ip",
                    lan.client], check=True, capture_output=True)
    log = tmp_path / "serve.log"
    serve = start_serve(NETBOOT, server_ns, config, log)
    try:
        wait_listening(server_ns, 69, "udp")
        wait_listening(server_ns, 8080, "tcp")
        loader = lan.run("curl", "-sS", f"tftp://{lan.server}/undionly.kpxe")
        assert sha256(loader.stdout) == sha256((root / "undionly.kpxe").read_bytes())
        script = lan.run("curl", "-sS", "--interface", lan.client,
                         f"http://{lan.server}:8080/clients/{MAC}/boot.ipxe")
        assert script.stdout.startswith(b"#!ipxe") and f"netboot.mac={MAC}".encode() in \
            script.stdout
        refused = lan.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface",
                          lan.stranger, f"http://{lan.server}:8080/clients/{MAC}/client.img")
        assert refused.stdout == b"403"
        kernel = lan.run("curl", "-sS", "--interface", lan.client,
                         f"tftp://{lan.server}/vmlinuz")
        assert kernel.stdout == b"kernel" * 1000
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    shown = subprocess.run([NETBOOT, "--config", str(config), "client", "show", MAC, "--json"],
                           capture_output=True, text=True, check=True).stdout
    assert '"last_stage": "kernel"' in shown
    text = log.read_text()
    assert "sent undionly.kpxe" in text and f"[{MAC}]" in text


def worker_processes(pid: int) -> list[int]:
    """The TFTP worker processes among the descendants of ``pid`` (``spawn`` starts each
    with ``spawn_main`` on its command line; the resource tracker has another)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                todo.append(child)
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
    return found


def test_serve_exits_non_zero_naming_tftp_when_a_worker_process_is_killed(lan_pair,
                                                                          tmp_path: Path):
    server_ns, _, interface, prefix = lan_pair
    config = boot_files_config(tmp_path, interface, prefix)
    log = tmp_path / "serve.log"
    serve = start_serve(NETBOOT, server_ns, config, log)
    try:
        wait_serving(serve, log)
        workers = worker_processes(serve.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        assert serve.wait(30) == 1
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    text = log.read_text()
    assert f"tftp thread tftp-workers died: TFTP worker tftp-1 (pid {workers[1]}) is gone: " \
           "it was killed by SIGKILL" in text
    assert "Error: serve stopped: tftp thread tftp-workers died" in text
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


ADMIN_PORT = 9180


@pytest.fixture
def admin_lan(lan_pair, tmp_path: Path):
    """serve (two TFTP workers, the network part as server.user) with its admin interface
    on the boot LAN's address, so the client namespace is \"another address\"."""
    server_ns, lan, interface, prefix = lan_pair
    config = boot_files_config(tmp_path, interface, prefix,
                               f"admin:\n  address: {prefix}.1\n  port: {ADMIN_PORT}\n")
    subprocess.run([NETBOOT, "--config", str(config), "client", "add", MAC, "--ip",
                    lan.client], check=True, capture_output=True)
    log = tmp_path / "serve.log"
    serve = start_serve(NETBOOT, server_ns, config, log)
    try:
        wait_serving(serve, log)
        token = (tmp_path / "state" / "admin.token").read_text().strip()
        yield lan, f"http://{lan.server}:{ADMIN_PORT}", token
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0, log.read_text()


def scrape(lan: Lan, base: str, token: str) -> dict[tuple[str, tuple], float]:
    page = lan.run("curl", "-sSf", "-H", f"Authorization: Bearer {token}", f"{base}/metrics")
    assert page.returncode == 0, page.stderr
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(page.stdout.decode()) for s in f.samples}


def test_admin_metrics_count_what_the_worker_processes_served(admin_lan):
    lan, base, token = admin_lan
    lan.run("curl", "-sS", "-o", "/dev/null", f"tftp://{lan.server}/undionly.kpxe")
    script = lan.run("curl", "-sS", "--interface", lan.client,
                     f"http://{lan.server}:8080/clients/{MAC}/boot.ipxe").stdout
    for _ in range(100):  # each process publishes its counters every second
        found = scrape(lan, base, token)
        if found.get(("netboot_http_files_sent_total", ())) and found.get(
                ("netboot_tftp_transfers_total", (("outcome", "done"),))):
            break
        time.sleep(0.1)
    assert found[("netboot_tftp_transfers_total", (("outcome", "done"),))] == 1
    assert found[("netboot_http_sent_bytes_total", ())] == len(script)
    assert found[("netboot_clients", ())] == 1
    who = (("hostname", f"node-{MAC.replace(':', '')}"), ("mac", MAC))
    assert found[("netboot_client_stage", (*who, ("stage", "loader")))] == 1


def test_admin_api_wants_the_token_from_another_address(admin_lan):
    lan, base, token = admin_lan
    refused = lan.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                      f"{base}/api/v1/clients")
    assert refused.stdout == b"401"
    answered = lan.run("curl", "-sS", "-w", "\\n%{http_code}", "-H",
                       f"Authorization: Bearer {token}", f"{base}/api/v1/clients/{MAC}")
    body, _, status = answered.stdout.rpartition(b"\n")
    assert status == b"200"
    check_answer("GET", f"{base}/api/v1/clients/{MAC}", 200, body, token=token)


def test_admin_page_is_served_to_anyone_and_holds_no_data(admin_lan):
    lan, base, _ = admin_lan
    page = lan.run("curl", "-sSf", f"{base}/")
    assert b"netboot fleet" in page.stdout and MAC.encode() not in page.stdout
