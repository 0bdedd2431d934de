"""Helpers for the boot file server tests: a served tree, a sample client, a raw TFTP client."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from netboot.boot.catalog import Catalog
from netboot.config import Config
from netboot.host import iproute
from netboot.http.server import HttpLimits, HttpServer
from netboot.inventory.clients import Client
from netboot.inventory.pool import InventoryPool
from netboot.inventory.recorder import StageRecorder
from netboot.inventory.store import Inventory
from netboot.inventory.windows import BootWindow
from netboot.tftp.options import Limits
from netboot.tftp.packets import Opcode, encode_ack, encode_request, parse
from netboot.tftp.server import TftpServer

MAC = "52:54:00:12:34:56"
SECRET = "s3cr3t-chap-pass"


def sample_client(ip: str = "127.0.0.2", mac: str = MAC) -> Client:
    return Client(
        mac=mac, hostname="node-a", ip=IPv4Address(ip), image=None, lun_path=None,
        lun_size=1 << 30, initiator_iqn="iqn.2026-11.org.example:node-a",
        target_iqn="iqn.2026-11.org.example:target.node-a", chap_user="node-a",
        chap_secret=SECRET, mutual_secret="mutual-secret-16", created=1764140000.0,
    )


@dataclass
class Lan:
    netns: str
    server: str
    client: str
    stranger: str

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(iproute.in_netns(self.netns, argv), capture_output=True,
                              timeout=timeout, check=False)


def open_window(pool: InventoryPool, config: Config, mac: str = MAC, *, ready: bool = True,
                now: float | None = None) -> BootWindow:
    """A boot window for ``mac``, as its PXE exchange with netboot's DHCP would open it."""
    with pool.borrow() as inventory:
        window, _ = inventory.open_window(mac, time.time() if now is None else now,
                                          config.boot.window, ready=ready)
    return window


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    """A running TFTP and HTTP server on loopback over a tree in tmp_path."""

    config: Config
    root: Path
    tftp: TftpServer
    http: HttpServer
    stages: StageRecorder
    pool: InventoryPool
    client: Client

    def open_window(self, mac: str = MAC, *, ready: bool = True) -> BootWindow:
        return open_window(self.pool, self.config, mac, ready=ready)

    def window_ready(self, boot_id: int) -> None:
        """What the window preparer does once a boot's target is ready."""
        with self.pool.borrow() as inventory:
            inventory.window_ready(boot_id)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"

    def stage_of(self, mac: str) -> str | None:
        self.stages.flush()
        with self.pool.borrow() as inventory:
            return inventory.get(mac).last_stage


def start_served(config: Config, address: str = "127.0.0.1", client_ip: str = "127.0.0.2",
                 limits: Limits | None = None) -> Served:
    root = config.tftp_root_path
    root.mkdir(parents=True, exist_ok=True)
    for path, size in ((config.kernel_path, 300_000), (config.initramfs_path, 1_000_000)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    pool = InventoryPool(lambda: Inventory(config.storage.database))
    client = sample_client(client_ip)
    with pool.borrow() as inventory, inventory.transaction() as db:
        inventory.insert(db, client)
    stages = StageRecorder(pool)
    catalog = Catalog(config, pool)
    tftp = TftpServer(IPv4Address(address), 0, catalog, stages, limits or Limits())
    http = HttpServer(IPv4Address(address), 0, catalog, stages, HttpLimits.of(config.server))
    for service in (stages, tftp, http):
        service.start()
    return Served(config, root, tftp, http, stages, pool, client)


def stop_served(served: Served) -> None:
    for service in (served.http, served.tftp, served.stages, served.pool):
        service.stop()


class RawClient:
    """A TFTP client on a UDP socket: sends exactly what a test says, reads what comes back."""

    def __init__(self, port: int, server: str = "127.0.0.1", bind: str = "127.0.0.1",
                 timeout: float = 5.0) -> None:
        self.server = (server, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.sock.settimeout(timeout)
        self.peer: tuple[str, int] | None = None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def request(self, name: str, options: dict[str, str] | None = None,
                opcode: Opcode = Opcode.RRQ) -> bytes:
        """Send a request; return the first reply and remember its transfer ID."""
        self.send_raw(encode_request(opcode, name, options))
        return self.receive()

    def receive(self) -> bytes:
        data, self.peer = self.sock.recvfrom(65536)
        return data

    def ack(self, block: int) -> None:
        assert self.peer is not None
        self.sock.sendto(encode_ack(block), self.peer)

    def download(self, name: str, options: dict[str, str] | None = None) -> bytes:
        """A whole transfer, lock-step or windowed, as RFC 1350/7440 clients do it."""
        first = self.request(name, options)
        if first[:2] == b"\x00\x06":
            agreed = _oack(first)
            blksize, window = int(agreed.get("blksize", 512)), int(agreed.get("windowsize", 1))
            self.ack(0)
            data = self.receive()
        else:
            blksize, window, data = 512, 1, first
        out, expected, in_window = bytearray(), 1, 0
        while True:
            assert data[:2] == b"\x00\x03", parse(data)
            block = int.from_bytes(data[2:4], "big")
            if block == expected & 0xFFFF:
                out += data[4:]
                expected += 1
                in_window += 1
                last = len(data) - 4 < blksize
                if last or in_window == window:
                    self.ack(block)
                    in_window = 0
                if last:
                    return bytes(out)
            data = self.receive()


def _oack(data: bytes) -> dict[str, str]:
    fields = data[2:].split(b"\0")[:-1]
    return {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}


def oack_options(data: bytes) -> dict[str, str]:
    assert data[:2] == b"\x00\x06", f"not an OACK: {data[:40]!r}"
    return _oack(data)
