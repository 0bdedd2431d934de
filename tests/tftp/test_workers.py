"""TFTP worker processes sharing one port (SO_REUSEPORT), as `netboot serve` runs them."""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address

import pytest

from netboot.inventory.store import Inventory
from netboot.inventory.windows import BootFile
from netboot.tftp.packets import Opcode
from netboot.tftp.workers import TftpWorkers
from tests.conftest import BASE_CONFIG
from tests.support.bootserving import MAC, SECRET, RawClient, sample_client, sha256


@pytest.fixture
def workers(make_config):
    config = make_config()
    config.tftp_root_path.mkdir()
    (config.tftp_root_path / "file").write_bytes(os.urandom(4 << 20))
    with Inventory(config.storage.database) as inventory, inventory.transaction() as db:
        inventory.insert(db, sample_client("127.0.0.2"))
    running = TftpWorkers(config, IPv4Address("127.0.0.1"), 0, 2)
    running.start()
    yield running
    running.stop()


def curl(workers: TftpWorkers, name: str, source: str = "127.0.0.1"):
    return subprocess.run(["curl", "-sS", "--max-time", "60", "--interface", source,
                           f"tftp://127.0.0.1:{workers.port}/{name}"],
                          capture_output=True, check=False)


def test_concurrent_downloads_from_two_workers_are_intact(workers: TftpWorkers):
    want = sha256((workers.config.tftp_root_path / "file").read_bytes())
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: curl(workers, "file"), range(6)))
    assert [r.returncode for r in results] == [0] * 6
    assert {sha256(r.stdout) for r in results} == {want}


def test_workers_spend_a_clients_token_once_between_them(workers: TftpWorkers):
    with Inventory(workers.config.storage.database) as inventory:
        window, _ = inventory.open_window(MAC, time.time(), 120, ready=True)
    name = f"clients/{MAC}/{window.tokens[BootFile.CLIENT_PART]}/client.img"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: curl(workers, name, "127.0.0.2"), range(4)))
    assert sorted(r.returncode for r in results) == [0, 69, 69, 69]
    assert sum(SECRET.encode() in r.stdout for r in results) == 1


def test_one_address_holds_at_most_max_per_source_transfers_between_the_workers(make_config):
    config = make_config(base=BASE_CONFIG.replace(
        "  tftp_root: {tftp_root}\n", "  tftp_root: {tftp_root}\n  tftp_max_per_source: 2\n"))
    config.tftp_root_path.mkdir()
    (config.tftp_root_path / "file").write_bytes(os.urandom(1 << 20))
    running = TftpWorkers(config, IPv4Address("127.0.0.1"), 0, 2)
    running.start()
    clients = [RawClient(running.port, bind="127.0.0.3") for _ in range(5)]
    try:  # none of them ACKs: each transfer it is given stays open
        first = [client.request("file")[:2] for client in clients]
    finally:
        for client in clients:
            client.close()
        running.stop()
    assert sorted(first) == [Opcode.DATA.to_bytes(2, "big")] * 2 + \
        [Opcode.ERROR.to_bytes(2, "big")] * 3


def test_stopping_ends_every_worker_process(workers: TftpWorkers):
    pids = workers.pids
    assert len(pids) == 2
    workers.stop()
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
