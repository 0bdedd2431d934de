"""`netboot serve` as a user runs it, in a namespace, with clients in a second namespace."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Interface
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netboot.boot.loaders import populate
from netboot.host import iproute
from netboot.serve.service import SERVE_READY
from tests.conftest import needs_root
from tests.support.bootserving import Lan, sha256
from tests.support.openapi import check_answer
from tests.support.paths import make_reachable

pytestmark = [needs_root, pytest.mark.root]
NETBOOT = str(Path(sys.executable).with_name("netboot"))
MAC = "52:54:00:12:34:56"


@pytest.fixture
def lan_pair():
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
    behind, none adopted."""
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


def start_serve(server_ns: str, config: Path, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(iproute.in_netns(server_ns, [NETBOOT, "--config", str(config),
                                                             "serve"]),
                                stdout=out, stderr=subprocess.STDOUT)


def wait_serving(serve: subprocess.Popen, log: Path) -> None:
    for _ in range(600):
        if SERVE_READY in log.read_text():
            return
        assert serve.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError("serve did not say it serves")


def test_serve_gives_a_client_its_loader_script_and_initrd_part(lan_pair, tmp_path: Path):
    server_ns, lan, interface, prefix = lan_pair
    config = boot_files_config(tmp_path, interface, prefix)
    root = tmp_path / "tftproot"
    subprocess.run([NETBOOT, "--config", str(config), "client", "add", MAC, "--ip",
                    lan.client], check=True, capture_output=True)
    log = tmp_path / "serve.log"
    serve = start_serve(server_ns, config, log)
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
    serve = start_serve(server_ns, config, log)
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
    serve = start_serve(server_ns, config, log)
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
