"""Boot storm: N registered machines boot at once, at the protocol level, against `netboot serve`
and against what an admin builds by hand (dnsmasq, busybox httpd, tgtd), in the same run; or
(``--storage rbd``) against netboot with roots on RBD and with roots in files, then read 64 MiB.

What the server's side of a rack power-on costs, without emulated VMs
(which are CPU-bound on this machine): a lab (`netboot lab up`'s VLAN, real
`netboot serve` and tgtd, the built-in image) gets the largest N clients
registered, and a second namespace, joined to the boot VLAN by a veth, plays
the machines. Each simulated machine, all started together:

1. DHCP DISCOVER/REQUEST as iPXE (user class iPXE, arch 0), its own MAC in
   frames built with struct (scapy takes a millisecond a frame) sent from an
   AF_PACKET socket (broadcast flag set, so replies are broadcast to port 68,
   where each machines' process has a socket; a reply is read by offsets);
   the ACK must give its inventory address and, as boot file, the URL of its
   own iPXE script (netboot's with its boot window's token);
2. its iPXE script over HTTP, then the kernel and both initrds the script
   names (netboot's initrd part with the next token), from the address DHCP
   gave it, on one HTTP/1.1 connection kept alive as iPXE keeps it (a new one
   when the server closes it, as busybox httpd does after each response); a
   body the machine does not look into (all but the script and the initrd
   part) is counted and discarded in the kernel (``MSG_TRUNC``), never copied;
3. an iSCSI login to its own target with its initiator IQN and the CHAP secret
   its initrd part holds (netboot renews it at each boot window): libiscsi
   through ctypes (login, TEST UNIT READY of LUN 1, logout), in a pool of
   :data:`ISCSI_POOL` threads per process, the secret only in memory.

The machines must cost less than the servers they measure: they are shared
out among a few processes (``--machine-procs``, default one per CPU), forked
in their namespace and cgroup, each running its machines as asyncio tasks.
Before issue 17 they were a thread each in one process (scapy frames, a new
``http.client`` connection per file read into Python, an ``iscsi-inq`` process
per login): 185 ms of CPU per machine at 200, more than serve and tgtd
together, so a storm of 1,000 could not be measured on 2 cores.

The peer is the same boot set up by hand, inside the lab's namespace on the
server's address: dnsmasq (DHCP only: a ``dhcp-host`` with a fixed address
and a tag per MAC, and per tag a ``dhcp-boot`` with that machine's script
URL), busybox httpd on port 8081 serving files in netboot's URL layout
rendered by netboot's own code (the same kernel and initramfs files; each
machine's iPXE script and initrd part, pointing at the peer's ports; no
per-address restriction, which busybox httpd cannot express per path), and a
tgtd of its own on portal port 3261 set up with one plain request per step (what
``tgtadm`` sends, on tgtd's management socket, so no secret is in an argv): per
machine a target, LUN 1 on the machine's own LUN file (the file netboot's
tgtd serves too: the storm only reads it), an ACL by initiator name and an
incoming CHAP account. The same machines (MACs, addresses, IQNs, secrets)
boot against both.

Only one DHCP server may answer on the VLAN, so the two take turns for each
N: in netboot's turn the peer is down; in the peer's `netboot serve` is stopped
(its tgtd keeps running, idle), the peer's dnsmasq and httpd start, the peer's
storm runs, they stop, and serve starts again. Who goes first alternates per N
so background load hits both alike; the load average at each storm's start is
reported with it.

``--storage rbd`` (issue 14) compares netboot with itself instead: two labs,
one with the roots in files (reflinks or sparse copies, as the lab dir's
filesystem allows) and one on Ceph (`lab up --storage ceph`: its own one-node
cluster, the roots RBD clones served by tgtd's rbd backing store), each with
its own machines' namespace and the same N machines (MACs and hostnames; their
secrets are each lab's own), taking turns as above; the peer is left out. The
roots have the lab's default size (1 GiB: the 32 MiB image, grown). After each
login storm comes a read phase: every machine that logged in reads the first
64 MiB of its root LUN at once, as a user-space initiator (qemu-io on QEMU's
iscsi driver, libiscsi, 1 MiB per request, the CHAP secret it logged in with in
a 0600 file for QEMU's ``secret`` object), and the figure is the aggregate MB/s
and each machine's seconds to its last byte (p50/p95/max). The first 64 MiB
are the image's 32 MiB then zeros on both stores, so the read compares the
serving paths, not the data.

``--storage overlay`` (issue 16) compares two ways of giving N machines one
image version, in two labs on one XFS with reflink (on a loop device with
direct I/O, so its reads are disk reads, counted apart from the host's): every
root an overlay on the shared version (each machine reads it as its target's
read-only LUN 255) against full reflink clones of it (LUN 1). The version is an
ext4 image of 160 MiB, most of it random bytes. The read phase reads the first
128 MiB, after caches are dropped, and adds what it cost: growth of the host's
page cache and bytes read from the labs' block device.

Reported per N and side, for the login storm and the read phase: time from
the start to each machine's login (or last byte read), how many failed and
where, and the CPU seconds the servers used, per client and as cores (CPU
seconds / wall seconds): netboot = serve + its tgtd (+ on RBD the Ceph daemons:
mon, mgr, osd), the peer = dnsmasq + busybox httpd + its tgtd. Each server runs
in a cgroup of its own and its CPU is read from the cgroup (busybox httpd's
per-connection children never show in its /proc/<pid>/stat); so do the
simulated machines (their processes and qemu-io), whose CPU is
reported beside the servers': on this 2-core machine they compete with the
servers they measure. The first side's rows carry first / second (netboot /
peer, or RBD / file) for p95 time, CPU per client and read MB/s.
Aim (issue 8): 200 machines logged in within 60 s, the server under one core;
(issue 17) 1,000 within 60 s, serve under one core, the peer left out above
:data:`PEER_MAX_CLIENTS` machines (``--clients 10 50 200 1000``: the peer at
10, 50 and 200, netboot at all four).
The client addresses are put on the machines' side before the storm (one
`ip -batch`), and DHCP must hand out exactly those. Everything the bench
starts (labs, Ceph cluster, peer, namespaces, cgroups, the machines' processes)
is stopped at the end, on Ctrl-C and on SIGTERM too. Needs root; with the
default N = 10, 50, 200 and the lab cache (kernel package) filled it took
about a minute here, mostly registering clients and setting up both tgtds;
``--clients 10 50 200 1000`` about 5 minutes (2 to register 1,000 clients and
have serve make their targets); ``--clients 10 200 --storage rbd`` about 6.

    .venv/bin/python bench/boot_storm.py [--clients 10 50 200] [--storage file|rbd|overlay]
        [--chap per-boot|never]
        [--timeout 120] [--machine-procs K] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import json
import multiprocessing
import os
import re
import secrets
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, replace
from ipaddress import IPv4Address, IPv4Interface
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TextIO

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from netboot.boot.clientpart import build_client_part  # noqa: E402
from netboot.boot.scripts import ipxe_script  # noqa: E402
from netboot.boot.urls import CLIENT_PART  # noqa: E402
from netboot.config import ChapRotation, Config  # noqa: E402
from netboot.configfile import load_config  # noqa: E402
from netboot.dhcp.options import (  # noqa: E402
    CLIENT_PORT,
    FILE_SIZE,
    IPXE_USER_CLASS,
    MAGIC_COOKIE,
    SERVER_PORT,
    SNAME_SIZE,
    HardwareType,
    MessageType,
    Op,
    Option,
)
from netboot.dhcp.packet import (  # noqa: E402
    BROADCAST,
    BROADCAST_FLAG,
    HEADER,
    OPTIONS_START,
    encode_options,
)
from netboot.host import iproute  # noqa: E402
from netboot.inventory.clients import BootMethod, Client  # noqa: E402
from netboot.inventory.luns import LOWER_LUN  # noqa: E402
from netboot.inventory.store import Inventory  # noqa: E402
from netboot.lab import ceph, lab, procs  # noqa: E402
from netboot.lab.topology import Topology, signals_interrupt  # noqa: E402
from netboot.lab.topology import load as load_topology  # noqa: E402
from netboot.lab.vm import lab_mac  # noqa: E402
from netboot.names import mac_bytes  # noqa: E402
from netboot.output import emit_json, table  # noqa: E402
from netboot.provisioning.clients import add_client  # noqa: E402
from netboot.storage.images import import_image  # noqa: E402
from netboot.target.model import TargetUnreachable  # noqa: E402
from netboot.target.tgt import TgtBackend  # noqa: E402
from netboot.target.tgtd import (  # noqa: E402
    forget_control_port,
    free_control_port,
    stop_tgtd,
    tgtd_pid,
)
from netboot.target.tgtmgmt import Mode, Operation, Param, Request, call  # noqa: E402

LAB_CACHE = Path(os.environ.get("NETBOOT_LAB_CACHE", REPO / "lab-state" / "cache"))
# Room for 1,000 fixed addresses besides DHCP's pool (the subnet's top quarter: 512 of 2,046).
VLAN = IPv4Interface("198.18.0.1/21")
LUN_SIZE = "32M"  # the built-in image's own size: no resize per client
READ_BYTES = 64 << 20  # storage rbd: what each machine reads of its root after the storm
SHARED_READ_BYTES = 128 << 20  # storage overlay: what each reads of its root (issue 16)
SHARED_IMAGE = "storm"  # storage overlay: the version every machine's root comes from
SHARED_IMAGE_SIZE = 160 << 20  # its ext4 size; a file of random bytes fills most of it
SHARED_DISK_SIZE = 16 << 30  # storage overlay: the XFS both labs live in (a sparse file)
READ_REQUEST = 1 << 20  # bytes per SCSI READ of that (Linux's max_sectors_kb is 512 to 1280)
CLIENTS = "clients"  # the cgroup of the machines' own process and what it runs
# The secret in the initrd part's client.conf: netboot renews it at each boot window.
PASSWORD = re.compile(rb"^ISCSI_PASSWORD='([^']*)'$", re.MULTILINE)
DHCP_TRIES = 4  # a lost DISCOVER/REQUEST is sent again, as firmware does
DHCP_WAIT = 4.0  # seconds per try
# The peer's servers listen beside netboot's in the lab's own namespace, where nothing else runs.
PEER_HTTP_PORT = lab.HTTP_PORT + 1
PEER_ISCSI_PORT = 3261
# The peer boots at most this many (issue 17): its tgtd's set-up by hand is a request per
# step, and each CHAP account added walks every account tgtd already holds.
PEER_MAX_CLIENTS = 200


@dataclass(frozen=True)
class Machine:
    """One simulated machine: what it sends and the names it logs in with (its secret
    comes in its initrd part: netboot renews it at each boot window)."""

    mac: str
    ip: str
    initiator: str
    target: str
    user: str
    root_lun: int = 1  # what the read phase reads: an overlay client's lower layer is LUN 255


@dataclass
class Result:
    mac: str
    at: dict[str, float]  # stage -> seconds since the storm's start
    failed: str | None = None
    bytes: int = 0


def progress(line: str) -> None:
    """A progress line for people, on stderr: stdout holds only the results (--json)."""
    print(line, file=sys.stderr, flush=True)


# --- the machines' side (runs in its own namespace) ---------------------------------

# The machines' frames (RFC 894 Ethernet II, RFC 791 IPv4 without options, RFC 768 UDP).
ETHERTYPE_IPV4 = b"\x08\x00"  # RFC 894
IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")  # RFC 791 section 3.1
IPV4_VERSION_IHL = 0x45  # version 4, a header of 5 32-bit words
IPV4_CHECKSUM_AT = 10  # RFC 791 section 3.1: the header checksum's offset
FRAME_TTL = 64
UDP_HEADER = struct.Struct("!HHHH")  # RFC 768: ports, length, checksum (0: none, as IPv4 allows)
# What iPXE on BIOS sends as option 60 (iPXE's dhcp.c: arch 0, UNDI version 2.1).
IPXE_VENDOR_CLASS = b"PXEClient:Arch:00000:UNDI:002001"
IPXE_ARCH_BIOS = bytes(2)  # RFC 4578 section 2.1: option 93 type 0, Intel x86PC
HTTP_BUFFER = 1 << 20  # per machines' process: what every HTTP head and kept body goes through
ISCSI_POOL = 128  # logins in flight per machines' process: threads blocked in libiscsi
LIBISCSI = "libiscsi.so.7"  # Debian libiscsi7: the library iscsi-inq and QEMU use
ISCSI_SESSION_NORMAL = 2  # libiscsi's iscsi.h enum iscsi_session_type
ISCSI_HEADER_DIGEST_NONE_CRC32C = 1  # iscsi.h enum iscsi_header_digest: what iscsi-inq offers


def _checksum(header: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of the 16-bit words."""
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _dhcp_frame(mac: str, xid: int, kind: MessageType,
                extra: dict[int, bytes] | None = None) -> bytes:
    """A DHCP message as iPXE on BIOS sends it (broadcast flag set, so the reply is
    broadcast to port 68), in an Ethernet broadcast frame: a few microseconds of struct
    where scapy takes a millisecond."""
    hardware = mac_bytes(mac)
    bootp = HEADER.pack(Op.BOOTREQUEST, HardwareType.ETHERNET, len(hardware), 0, xid, 0,
                        BROADCAST_FLAG, bytes(4), bytes(4), bytes(4), bytes(4),
                        hardware.ljust(16, b"\0"), bytes(SNAME_SIZE), bytes(FILE_SIZE))
    bootp += MAGIC_COOKIE + encode_options({
        Option.MESSAGE_TYPE: bytes((kind,)), Option.CLIENT_ARCHITECTURE: IPXE_ARCH_BIOS,
        Option.VENDOR_CLASS: IPXE_VENDOR_CLASS, Option.USER_CLASS: IPXE_USER_CLASS,
        Option.CLIENT_ID: bytes((HardwareType.ETHERNET,)) + hardware, **(extra or {})})
    udp = UDP_HEADER.pack(CLIENT_PORT, SERVER_PORT, UDP_HEADER.size + len(bootp), 0) + bootp
    ip = IPV4_HEADER.pack(IPV4_VERSION_IHL, 0, IPV4_HEADER.size + len(udp), 0, 0, FRAME_TTL,
                          socket.IPPROTO_UDP, 0, bytes(4), BROADCAST.packed)
    ip = (ip[:IPV4_CHECKSUM_AT] + _checksum(ip).to_bytes(2, "big")
          + ip[IPV4_CHECKSUM_AT + 2:])
    return b"\xff" * len(hardware) + hardware + ETHERTYPE_IPV4 + ip + udp


@dataclass(frozen=True)
class DhcpReply:
    """What a machine reads of a server's reply."""

    kind: int | None  # option 53
    yiaddr: bytes
    server_id: bytes | None  # option 54
    file: str


def _dhcp_reply(data: bytes) -> DhcpReply:
    """The fields a machine needs, by offset, and options 53 and 54 by one walk of the
    options (no overload: neither netboot nor dnsmasq overloads a reply this short)."""
    fields = HEADER.unpack_from(data)
    options: dict[int, bytes] = {}
    at = OPTIONS_START
    while at + 1 < len(data) and data[at] != Option.END:
        if data[at] == Option.PAD:
            at += 1
            continue
        options[data[at]] = data[at + 2 : at + 2 + data[at + 1]]
        at += 2 + data[at + 1]
    kind = options.get(Option.MESSAGE_TYPE)
    return DhcpReply(kind[0] if kind else None, fields[8], options.get(Option.SERVER_ID),
                     fields[13].rstrip(b"\0").decode())


class DhcpWire:
    """One raw socket sends a machines' process's frames; one UDP socket on port 68 gets
    every reply on the VLAN (each process has one, SO_REUSEADDR: a broadcast reaches them
    all), handed to the machine waiting for its xid."""

    def __init__(self, interface: str) -> None:
        self.send_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.send_sock.bind((interface, 0))
        self.recv_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.recv_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.recv_sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        self.recv_sock.bind(("", CLIENT_PORT))
        self.recv_sock.setblocking(False)
        self.waiting: dict[int, tuple[int, asyncio.Future[DhcpReply]]] = {}
        asyncio.get_running_loop().add_reader(self.recv_sock, self._receive)

    def _receive(self) -> None:
        while True:
            try:
                data = self.recv_sock.recv(4096)
            except BlockingIOError:
                return
            if len(data) < OPTIONS_START or data[0] != Op.BOOTREPLY:
                continue
            waiter = self.waiting.get(int.from_bytes(data[4:8], "big"))  # xid
            if waiter is not None and not waiter[1].done():
                reply = _dhcp_reply(data)
                if reply.kind == waiter[0]:
                    waiter[1].set_result(reply)

    async def exchange(self, frame: bytes, xid: int, want: MessageType) -> DhcpReply | None:
        """Send ``frame`` until a reply of DHCP message type ``want`` comes back."""
        future: asyncio.Future[DhcpReply] = asyncio.get_running_loop().create_future()
        self.waiting[xid] = (want, future)
        try:
            for _ in range(DHCP_TRIES):
                self.send_sock.send(frame)
                done, _ = await asyncio.wait({future}, timeout=DHCP_WAIT)
                if done:
                    return future.result()
            return None
        finally:
            del self.waiting[xid]


@dataclass
class HttpResponse:
    status: int
    length: int
    body: bytearray | None  # only when asked for: every other body is counted, not kept
    close: bool  # the server ends the connection after it (busybox httpd always does)
    retry_after: int | None = None  # seconds, from a Retry-After header


class HttpConnection:
    """One machine's HTTP/1.1 connection, kept alive from request to request as iPXE keeps
    it. A body the machine does not look into is discarded in the kernel (MSG_TRUNC on a
    TCP socket, tcp(7)): received and counted, never copied; heads and kept bodies go
    through its process's one buffer."""

    def __init__(self, sock: socket.socket, buffer: memoryview) -> None:
        self.sock, self.buffer = sock, buffer
        self.loop = asyncio.get_running_loop()
        self.waiting: asyncio.Future[HttpResponse] = self.loop.create_future()
        self.head = bytearray()
        self.left = -1  # body bytes still to come; -1: the head is still coming
        self.response = HttpResponse(0, 0, None, False)

    @classmethod
    async def open(cls, server: str, port: int, source: str,
                   buffer: memoryview) -> HttpConnection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.bind((source, 0))
            await asyncio.get_running_loop().sock_connect(sock, (server, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock, buffer)

    async def get(self, path: str, host: str, keep: bool) -> HttpResponse:
        """GET ``path``; its body only if ``keep``."""
        self.waiting = self.loop.create_future()
        self.head, self.left = bytearray(), -1
        self.response = HttpResponse(0, 0, bytearray() if keep else None, False)
        await self.loop.sock_sendall(self.sock, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                                                "User-Agent: iPXE/1.21.1\r\n\r\n".encode())
        self.loop.add_reader(self.sock, self._readable)
        try:
            return await self.waiting
        finally:
            self.loop.remove_reader(self.sock)

    def _readable(self) -> None:
        try:
            while not self.waiting.done():
                self._receive()
        except BlockingIOError:
            return
        except (OSError, ValueError) as err:
            if not self.waiting.done():
                self.waiting.set_exception(RuntimeError(f"http: {err}"))

    def _receive(self) -> None:
        response, buffer = self.response, self.buffer
        if self.left < 0:
            received = self.sock.recv_into(buffer)
            if not received:
                raise ValueError("connection closed before the response's head")
            self.head += buffer[:received]
            if (end := self.head.find(b"\r\n\r\n")) < 0:
                return
            self._parse_head(bytes(self.head[:end]))
            rest = self.head[end + 4:]
            self.left = response.length - len(rest)
            if response.body is not None:
                response.body += rest
        else:
            size = min(self.left, len(buffer))
            if response.body is None:
                received = self.sock.recv_into(buffer, size, socket.MSG_TRUNC)
            else:
                received = self.sock.recv_into(buffer, size)
                response.body += buffer[:received]
            if not received:
                raise ValueError("connection closed mid-body")
            self.left -= received
        if self.left <= 0:
            self.waiting.set_result(response)

    def _parse_head(self, head: bytes) -> None:
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status = status_line.split(" ", 2)[:2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        if "content-length" not in headers:
            raise ValueError(f"no Content-Length after {status_line!r}")
        connection = headers.get("connection", "").lower()
        self.response.status, self.response.length = int(status), int(headers["content-length"])
        self.response.close = connection == "close" or (
            version == "HTTP/1.0" and connection != "keep-alive")
        if (retry := headers.get("retry-after", "")).isdigit():
            self.response.retry_after = int(retry)

    def close(self) -> None:
        self.sock.close()


class HttpClient:
    """A machine's HTTP client: one connection while the server keeps it, a new one when
    the server has closed it."""

    def __init__(self, server: str, port: int, source: str, buffer: memoryview) -> None:
        self.server, self.port, self.source, self.buffer = server, port, source, buffer
        self.connection: HttpConnection | None = None

    async def get(self, path: str, keep: bool = False) -> HttpResponse:
        """GET ``path``; a response with Retry-After is asked again that much later, as
        iPXE does (``http_parse_retry_after``, src/net/tcp/httpcore.c)."""
        while True:
            if self.connection is None:
                self.connection = await HttpConnection.open(self.server, self.port,
                                                            self.source, self.buffer)
            response = await self.connection.get(path, f"{self.server}:{self.port}", keep)
            if response.close:
                self.close()
            if response.retry_after is None:
                break
            await asyncio.sleep(response.retry_after)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return response

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


class Libiscsi:
    """libiscsi's synchronous login through ctypes: no process per login, and the CHAP
    secret passed in memory. ctypes releases the GIL for each call, so logins run in a
    thread pool (include/iscsi.h of libiscsi 1.19 for the signatures)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(LIBISCSI)
        context, text, number = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, args, result in (
                ("iscsi_create_context", [text], context),
                ("iscsi_set_targetname", [context, text], number),
                ("iscsi_set_session_type", [context, number], number),
                ("iscsi_set_header_digest", [context, number], number),
                ("iscsi_set_initiator_username_pwd", [context, text, text], number),
                ("iscsi_set_timeout", [context, number], number),
                ("iscsi_full_connect_sync", [context, text, number], number),
                ("iscsi_logout_sync", [context], number),
                ("iscsi_get_error", [context], text),
                ("iscsi_destroy_context", [context], number)):
            function = getattr(lib, name)
            function.argtypes, function.restype = args, result
        self.lib = lib

    def login(self, machine: Machine, secret: str, portal: str, timeout: float) -> None:
        """Log in to ``machine``'s target as it (CHAP), check LUN 1 is there (libiscsi's
        full connect: login, then TEST UNIT READY), log out."""
        lib = self.lib
        context = lib.iscsi_create_context(machine.initiator.encode())
        if not context:
            raise RuntimeError("login: libiscsi made no context")
        try:
            if (lib.iscsi_set_targetname(context, machine.target.encode())
                    or lib.iscsi_set_session_type(context, ISCSI_SESSION_NORMAL)
                    or lib.iscsi_set_header_digest(context, ISCSI_HEADER_DIGEST_NONE_CRC32C)
                    or lib.iscsi_set_initiator_username_pwd(context, machine.user.encode(),
                                                            secret.encode())
                    or lib.iscsi_set_timeout(context, max(int(timeout), 1))
                    or lib.iscsi_full_connect_sync(context, portal.encode(), 1)):
                raise RuntimeError(f"login: {(lib.iscsi_get_error(context) or b'').decode()}")
            lib.iscsi_logout_sync(context)
        finally:
            lib.iscsi_destroy_context(context)


# The script's kernel and initrd lines: the initrd's name, its URL.
SCRIPT_FILES = re.compile(r"^(?:kernel|initrd(?: --name (\S+))?) (http://\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Shared:
    """What one machines' process shares between its machines."""

    wire: DhcpWire
    buffer: memoryview
    iscsi: Libiscsi
    pool: ThreadPoolExecutor
    server: str
    http_port: int
    iscsi_port: int
    timeout: float


async def _boot_one(machine: Machine, process: Shared, mark: Callable[[str], None],
                    result: Result) -> str:
    """DHCP, script, files and login for ``machine``; the CHAP secret this boot logged in with."""
    xid = secrets.randbits(32)
    offer = await process.wire.exchange(_dhcp_frame(machine.mac, xid, MessageType.DISCOVER),
                                        xid, MessageType.OFFER)
    if offer is None:
        raise RuntimeError("dhcp: no OFFER")
    if offer.server_id is None:
        raise RuntimeError("dhcp: OFFER without a server id")
    ack = await process.wire.exchange(_dhcp_frame(machine.mac, xid, MessageType.REQUEST, {
        Option.REQUESTED_ADDRESS: offer.yiaddr, Option.SERVER_ID: offer.server_id}),
        xid, MessageType.ACK)
    if ack is None:
        raise RuntimeError("dhcp: no ACK")
    if ack.yiaddr != IPv4Address(machine.ip).packed:
        raise RuntimeError(f"dhcp: got {IPv4Address(ack.yiaddr)}, inventory says {machine.ip}")
    server, http_port = process.server, process.http_port
    own = f"http://{server}:{http_port}/clients/{machine.mac}/"
    if not (ack.file.startswith(own) and ack.file.endswith("/boot.ipxe")):
        raise RuntimeError(f"dhcp: boot file {ack.file!r} is not this machine's script")
    mark("dhcp")
    http = HttpClient(server, http_port, machine.ip, process.buffer)
    try:
        script = (await http.get("/" + ack.file.split("/", 3)[3], keep=True)).body or b""
        mark("script")
        files = SCRIPT_FILES.findall(script.decode())
        if len(files) != 3:
            raise RuntimeError(f"script: expected a kernel and two initrds, found {files}")
        secret = None
        for name, url in files:
            response = await http.get("/" + url.split("/", 3)[3], keep=name == CLIENT_PART)
            result.bytes += response.length
            if response.body is not None and (found := PASSWORD.search(response.body)):
                secret = found[1].decode()  # the initrd part holds this boot's secret
    finally:
        http.close()
    if secret is None:
        raise RuntimeError(f"files: no CHAP secret in the initrd part {CLIENT_PART}")
    mark("files")
    await asyncio.get_running_loop().run_in_executor(
        process.pool, process.iscsi.login, machine, secret, f"{server}:{process.iscsi_port}",
        process.timeout)
    mark("login")
    return secret


def _read_one(machine: Machine, secret: str, server: str, iscsi_port: int, size: int,
              private: Path, timeout: float, result: Result) -> None:
    """Read the first ``size`` bytes of ``machine``'s root LUN as a user-space initiator would:
    QEMU's iscsi driver (libiscsi), qemu-io's ``read`` of :data:`READ_REQUEST` bytes at a
    time, one after the other (a single 64 MiB read has QEMU and tgtd each hold a buffer of
    that size per machine, 25 GiB for 200: a first run at 200 thrashed). The secret goes to
    QEMU in a file (0600, in ``private``), never in an argv."""
    password = private / f"{machine.mac.replace(':', '')}.chap"
    password.touch(mode=0o600)
    password.write_text(secret)
    image = ",".join(("driver=iscsi", "transport=tcp", f"portal={server}:{iscsi_port}",
                      f"target={machine.target}", f"lun={machine.root_lun}",
                      f"user={machine.user}",
                      "password-secret=chap", f"initiator-name={machine.initiator}"))
    reads = [f"read {offset} {READ_REQUEST}" for offset in range(0, size, READ_REQUEST)]
    done = subprocess.run(["qemu-io", "--object", f"secret,id=chap,file={password}",
                           "--image-opts", "--read-only", image,
                           *(arg for read in reads for arg in ("-c", read))],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or done.stdout.count(
            f"read {READ_REQUEST}/{READ_REQUEST} bytes") != len(reads):
        raise RuntimeError(f"read: {(done.stderr or done.stdout).strip()[:120]}")
    result.bytes += size


async def _at_once(machines: list[Machine],
                   act: Callable[[Machine, Callable[[str], None], Result], Awaitable[None]],
                   last: str, start: float, timeout: float) -> list[Result]:
    """``act`` for every machine at once, a task each: each one's result, its stages in
    seconds since ``start`` (a monotonic time shared by all machines' processes); one that
    has not reached stage ``last`` within ``timeout`` seconds of it failed."""
    results = [Result(m.mac, {}) for m in machines]

    async def run(machine: Machine, result: Result) -> None:
        def mark(stage: str) -> None:
            result.at[stage] = time.monotonic() - start

        try:
            await act(machine, mark, result)
        except Exception as err:  # one machine's failure is a figure, not the end of the run
            result.failed = str(err) or type(err).__name__

    tasks = [asyncio.create_task(run(*pair)) for pair in zip(machines, results, strict=True)]
    if tasks:
        await asyncio.wait(tasks, timeout=max(start + timeout - time.monotonic(), 0))
    for task in tasks:
        task.cancel()  # a login in libiscsi runs on in its thread; its result is not awaited
    for result in results:
        if last not in result.at and result.failed is None:
            reached = max(result.at, default="start", key=result.at.get)
            result.failed = f"timeout: still at {reached}"
    return results


def _machines_process(machines: list[Machine], spec: dict, conn: Connection) -> None:
    """One machines' process: its share of the machines, each an asyncio task. It says
    it is ready, then runs each phase it is told to (with the shared start time) and
    sends the phase's results back."""
    asyncio.run(_machines_phases(machines, spec, conn))


async def _machines_phases(machines: list[Machine], spec: dict, conn: Connection) -> None:
    process = Shared(DhcpWire(spec["interface"]), memoryview(bytearray(HTTP_BUFFER)),
                      Libiscsi(), ThreadPoolExecutor(ISCSI_POOL), spec["server"],
                      spec["http_port"], spec["iscsi_port"], spec["timeout"])
    logged_in: dict[str, str] = {}  # MAC -> the secret this boot logged in with

    async def boot(machine: Machine, mark: Callable[[str], None], result: Result) -> None:
        logged_in[machine.mac] = await _boot_one(machine, process, mark, result)

    async def read(machine: Machine, mark: Callable[[str], None], result: Result) -> None:
        await asyncio.get_running_loop().run_in_executor(
            readers, _read_one, machine, logged_in[machine.mac], process.server,
            process.iscsi_port, spec["read_bytes"], Path(spec["private"]), process.timeout,
            result)
        mark("read")

    conn.send("ready")
    command, start = conn.recv()
    if command == "boot":
        conn.send(await _at_once(machines, boot, "login", start, process.timeout))
        command, start = conn.recv()
    if command == "read":  # every machine that logged in reads at once: a thread each
        readers = ThreadPoolExecutor(max(len(logged_in), 1))
        conn.send(await _at_once([m for m in machines if m.mac in logged_in], read, "read",
                                 start, process.timeout))
        conn.recv()


def machines_side(commands: TextIO, answers: TextIO) -> None:
    """One storm on the machines' side (run inside their namespace).

    It says ``ready`` once it has imported what it needs; the spec comes as the first line
    of ``commands``; the machines are shared out among
    ``procs`` processes (forked: the cgroup and namespace are this one's), and the boot's
    results of all go back as one line of ``answers``. With ``read_bytes``, the next line
    of ``commands`` starts the read phase (the bench has read the servers' CPU meanwhile)
    for the machines that logged in, with the secret each logged in with (in a file in
    ``private``, a 0700 directory the bench removes); its results are the next answer.
    """
    answers.write("ready\n")  # imported: what it costs is not the storm's
    answers.flush()
    spec = json.loads(commands.readline())
    machines = [Machine(**m) for m in spec["machines"]]
    count = max(min(spec["procs"], len(machines)), 1)
    forks = multiprocessing.get_context("fork")
    conns = []
    for i in range(count):
        ours, theirs = forks.Pipe()
        forks.Process(target=_machines_process, args=(machines[i::count], spec, theirs),
                      daemon=True).start()
        conns.append(ours)
    for conn in conns:
        conn.recv()  # ready: its sockets are open, so no reply can be missed

    def phase(command: str) -> None:
        start = time.monotonic()
        for conn in conns:
            conn.send((command, start))
        results = [result for conn in conns for result in conn.recv()]
        answers.write(json.dumps([asdict(r) for r in results]) + "\n")
        answers.flush()

    phase("boot")
    if spec["read_bytes"] and commands.readline():
        phase("read")
    for conn in conns:
        conn.send(("stop", 0.0))


# --- the server's side --------------------------------------------------------------

def _machine(client: Client) -> Machine:
    return Machine(client.mac, str(client.ip), client.initiator_iqn, client.target_iqn,
                   client.chap_user,
                   LOWER_LUN if client.boot_method is BootMethod.OVERLAY else 1)


@dataclass(frozen=True)
class Roots:
    """What a lab's clients boot: the image they come from (a file to import as it, or the
    lab's own built-in image) and the boot method."""

    image_file: Path | None = None
    method: BootMethod = BootMethod.INITRAMFS


def _register(state: lab.LabState, count: int, roots: Roots) -> list[Client]:
    config = load_config(state.config)
    image = lab.IMAGE
    if roots.image_file is not None:
        image = import_image(config, SHARED_IMAGE, roots.image_file)[0].ref
        progress(f"  imported {roots.image_file} as {image}")
    clients = []
    with Inventory(config.storage.database) as inventory:
        have = {c.mac: c for c in inventory.clients()}
        for i in range(count):
            mac = lab_mac(i + 1)
            clients.append(have.get(mac) or add_client(
                config, inventory, mac, hostname=f"storm-{i + 1:03d}", image=image,
                boot_method=roots.method, backend=None).client)  # serve's reconcile: targets
            if (i + 1) % 25 == 0 or i + 1 == count:
                progress(f"  registered {i + 1}/{count} clients")
    return clients


def _wait_for_targets(state: lab.LabState, count: int, timeout: float = 600) -> None:
    backend = TgtBackend(state.tgt_control_port, load_config(state.config).storage.state_dir)
    deadline = time.monotonic() + timeout
    while (made := len(backend.targets())) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"serve made {made} of {count} targets in {timeout:.0f} s")
        time.sleep(1)
    progress(f"  tgtd holds {count} targets")


def _machines_side(vlan_netns: str, bridge: str, machines: list[Machine], prefix: int) -> tuple[
        str, str]:
    """A namespace for the machines, a veth into the VLAN's bridge, every client address on it."""
    netns, outside, inside = (f"nbstorm{secrets.token_hex(3)}", f"nbsv{secrets.token_hex(3)}",
                              f"nbsm{secrets.token_hex(3)}")
    iproute.add_netns(netns)
    iproute.add_veth(outside, inside, netns=vlan_netns, peer_netns=netns)
    iproute.attach(outside, bridge, netns=vlan_netns)
    batch = "".join(f"addr add {m.ip}/{prefix} dev {inside}\n" for m in machines)
    subprocess.run(iproute.in_netns(netns, ["ip", "-batch", "-"]), input=batch, text=True,
                   check=True)
    iproute.ip("link", "set", inside, "up", netns=netns)
    iproute.ip("link", "set", "lo", "up", netns=netns)
    return netns, inside


@dataclass(frozen=True)
class CacheProbe:
    """What a read phase cost the host's memory and disk: the page cache (``Cached`` in
    /proc/meminfo, host-wide) and the bytes read from the block device holding a lab's
    files (its /sys/dev/block stat). Both sides' read phases start from dropped caches."""

    device: Path  # /sys/dev/block/MAJOR:MINOR

    @classmethod
    def holding(cls, path: Path) -> CacheProbe:
        device = path.stat().st_dev
        return cls(Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}"))

    def drop_caches(self) -> None:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")

    def sample(self) -> tuple[int, int]:
        """Bytes in the page cache, bytes read from the device so far."""
        cached = re.search(r"^Cached:\s+(\d+) kB$", Path("/proc/meminfo").read_text(),
                           re.MULTILINE)
        assert cached is not None
        sectors_read = int((self.device / "stat").read_text().split()[2])  # block/stat.rst
        return int(cached[1]) << 10, sectors_read * 512


def cgroup2_root() -> Path:
    """Where the cgroup v2 hierarchy is mounted (not always /sys/fs/cgroup)."""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if fstype == "cgroup2":
            return Path(mount)
    raise SystemExit("no cgroup2 hierarchy is mounted: the servers' CPU cannot be measured")


class CpuGroup:
    """One server's processes in a cgroup of their own: the CPU every task of it used.

    busybox httpd forks a child per connection and ignores SIGCHLD, so the
    kernel reaps those children without adding their time to the parent's
    /proc/<pid>/stat; a cgroup's cpu.stat counts every task that ran in it.
    All servers of both sides are measured this way (usage_usec needs no
    controller enabled), each from just after it started.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.path = root / f"nbstorm-{secrets.token_hex(3)}-{name}"
        self.path.mkdir()

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def seconds(self) -> float:
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1e6

    def kill(self) -> None:
        """SIGKILL every process in it (``cgroup.kill``), and wait until none is left."""
        (self.path / "cgroup.kill").write_text("1\n")
        deadline = time.monotonic() + 5
        while (self.path / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.02)

    def remove(self, timeout: float = 5) -> None:
        """Hand any process still in it back to the hierarchy's root, then delete it. A
        task killed a moment ago (tgtd that would not stop) keeps it busy until it has
        exited: the delete is tried again meanwhile."""
        for pid in (self.path / "cgroup.procs").read_text().split():
            with suppress(ProcessLookupError):
                (self.root / "cgroup.procs").write_text(f"{pid}\n")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)


# --- the peer: what an admin builds by hand today ------------------------------------

@dataclass(frozen=True)
class Peer:
    """The peer's files and configuration, in the lab namespace next to netboot's servers."""

    topo: Topology
    work: Path
    root: Path  # busybox httpd's directory
    dnsmasq_conf: Path
    tgt_control_port: int


def _peer_config(config: Config) -> Config:
    """netboot's config with the peer's ports: what renders the peer's scripts and initrd parts."""
    return replace(config, server=replace(config.server, http_port=PEER_HTTP_PORT),
                   target=replace(config.target, portal_port=PEER_ISCSI_PORT))


def _peer_files(config: Config, clients: list[Client], root: Path) -> None:
    """What busybox httpd serves, in netboot's URL layout and made by netboot's own code.

    The same kernel and initramfs files; each client's iPXE script and initrd
    part rendered for the peer's ports (the part holds the CHAP secret: 0600).
    """
    (root / "boot").mkdir(parents=True)
    shutil.copyfile(config.kernel_path, root / "boot" / "vmlinuz")
    shutil.copyfile(config.initramfs_path, root / "boot" / "initramfs.img")
    for client in clients:
        directory = root / "clients" / client.mac
        directory.mkdir(parents=True)
        (directory / "boot.ipxe").write_text(ipxe_script(config, client))
        part = directory / "client.img"
        part.touch(mode=0o600)
        part.write_bytes(build_client_part(config, client))


def _dnsmasq_conf(topo: Topology, clients: list[Client], base_url: str, leases: Path) -> str:
    """dnsmasq as an admin writes it: DHCP only, per MAC a fixed address and its script's URL."""
    network = topo.address.network
    lines = ["port=0", f"interface={topo.bridge}", "bind-interfaces",
             f"dhcp-range={network.network_address},static,{network.netmask},1h",
             f"dhcp-leasefile={leases}", "dhcp-authoritative", "dhcp-userclass=set:ipxe,iPXE"]
    for i, client in enumerate(clients):
        lines += [f"dhcp-host={client.mac},set:m{i},{client.ip}",
                  f"dhcp-boot=tag:ipxe,tag:m{i},{base_url}/clients/{client.mac}/boot.ipxe"]
    return "\n".join(lines) + "\n"


def _peer_tgtd(topo: Topology, control_port: int, clients: list[Client], log: Path,
               timeout: float = 10) -> int:
    """A tgtd of the peer's own, set up step by step as an admin scripts tgtadm.

    Per client: a target, LUN 1 on that client's LUN file (the one netboot's
    tgtd serves too; the storm only reads it), an ACL by initiator name and
    an incoming CHAP account. Returns tgtd's pid.
    """
    with log.open("ab") as out:
        subprocess.run(iproute.in_netns(topo.netns, [
            "tgtd", "-C", str(control_port), "--iscsi",
            f"portal={topo.server}:{PEER_ISCSI_PORT}"]), stdout=out, stderr=out, check=True)
    deadline = time.monotonic() + timeout
    while True:
        with suppress(TargetUnreachable):
            if (pid := tgtd_pid(control_port)) is not None:
                call(control_port, Request(Mode.SYSTEM, Operation.SHOW), what="peer tgtd")
                break
        if time.monotonic() > deadline:
            raise SystemExit(f"the peer's tgtd did not come up in {timeout:.0f} s (log: {log})")
        time.sleep(0.05)
    for tid, client in enumerate(clients, start=1):
        user = ((Param.USER, client.chap_user),)
        for request in (
                Request(Mode.TARGET, Operation.NEW, tid=tid,
                        params=((Param.TARGETNAME, client.target_iqn),)),
                Request(Mode.DEVICE, Operation.NEW, tid=tid, lun=1,
                        params=((Param.PATH, str(client.lun_path)),)),
                Request(Mode.TARGET, Operation.BIND, tid=tid,
                        params=((Param.INITIATOR_NAME, client.initiator_iqn),)),
                Request(Mode.ACCOUNT, Operation.NEW, params=user, secret=client.chap_secret),
                Request(Mode.ACCOUNT, Operation.BIND, tid=tid, params=user)):
            call(control_port, request, what=f"peer target for {client.mac}")
        if tid % 50 == 0 or tid == len(clients):
            progress(f"  peer tgtd holds {tid}/{len(clients)} targets")
    return pid


def _wait_listening(netns: str, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not subprocess.run(iproute.in_netns(netns, ["ss", "-Hltn", f"sport = :{port}"]),
                             capture_output=True, text=True, check=True).stdout.strip():
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")
        time.sleep(0.05)


@contextmanager
def _peer_serving(peer: Peer, groups: dict[str, CpuGroup]) -> Iterator[None]:
    """The peer's dnsmasq and busybox httpd for one turn; both stop when it ends."""
    logs = peer.work / "logs"
    with ExitStack() as stack:
        httpd = procs.start(peer.topo, "peer-httpd", [
            "busybox", "httpd", "-f", "-p", f"{peer.topo.server}:{PEER_HTTP_PORT}",
            "-h", str(peer.root)], logs)
        stack.callback(httpd.stop)
        groups["httpd"].add(httpd.pid)
        dnsmasq = procs.start(peer.topo, "peer-dnsmasq", [
            "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--user=root",
            f"--pid-file={peer.work / 'dnsmasq.pid'}", f"--conf-file={peer.dnsmasq_conf}"],
            logs)
        stack.callback(dnsmasq.stop)
        groups["dnsmasq"].add(dnsmasq.pid)
        procs.wait_for_log(dnsmasq, "DHCP, ")
        _wait_listening(peer.topo.netns, PEER_HTTP_PORT)
        yield


# --- one storm, either side ----------------------------------------------------------

@dataclass
class LabRun:
    """A lab the bench brought up and its registered clients (``state`` changes when serve
    restarts)."""

    state: lab.LabState
    clients: list[Client]
    topo: Topology
    config: Config
    groups: dict[str, CpuGroup]

    @contextmanager
    def serve_stopped(self) -> Iterator[None]:
        """serve stopped for a while (its tgtd keeps running), then started again."""
        lab.stop_serve(self.state)
        yield
        self.state = lab.restart_serve(self.state)
        _add_tree(self.groups["serve"], self.state.pids["serve"])


@dataclass(frozen=True)
class Side:
    """What the machines boot against in one turn: where they reach it from (their
    namespace and interface, their credentials there), its ports, the cgroups of its
    servers, and what its turn needs around the storm."""

    name: str
    machines: list[Machine]
    netns: str
    interface: str
    endpoint: dict[str, object]  # server, http_port, iscsi_port
    groups: dict[str, CpuGroup]
    probe: CacheProbe
    turn: Callable[[], AbstractContextManager[object]] = nullcontext
    max_clients: int | None = None  # storms of more machines leave this side out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _cpu(groups: dict[str, CpuGroup]) -> dict[str, float]:
    return {name: group.seconds() for name, group in groups.items()}


def _phase(stage: str, results: list[Result], wall: float, before: dict[str, float],
           after: dict[str, float]) -> dict:
    """One phase's figures, keys prefixed with ``stage``: each machine's seconds to reach it
    (p50/p95/max), its failures, and the CPU seconds the servers and the machines used."""
    times = [r.at[stage] for r in results if stage in r.at]
    used = {name: round(after[name] - before[name], 2) for name in after}
    clients = used.pop(CLIENTS)
    return {
        f"{stage}_ok": len(times), f"{stage}_wall_s": round(wall, 2),
        f"{stage}_p50_s": round(_percentile(times, 0.5), 2) if times else None,
        f"{stage}_p95_s": round(_percentile(times, 0.95), 2) if times else None,
        f"{stage}_max_s": round(max(times), 2) if times else None,
        f"{stage}_cpu_s": used, f"{stage}_server_cores": round(sum(used.values()) / wall, 2),
        f"{stage}_clients_cpu_s": clients,
        f"{stage}_failures": dict(Counter(r.failed.split(":")[0] for r in results if r.failed)),
        f"{stage}_first_failure": next((f"{r.mac}: {r.failed}" for r in results if r.failed),
                                       None),
    }


def _answer(machines: subprocess.Popen[str], errors: TextIO) -> list[Result]:
    line = machines.stdout.readline() if machines.stdout else ""
    if not line:
        machines.wait()
        errors.seek(0)
        raise SystemExit(f"the machines' side failed: {errors.read().strip()[-2000:]}")
    return [Result(**r) for r in json.loads(line)]


def _storm(side: Side, count: int, clients: CpuGroup, timeout: float, read_bytes: int,
           procs: int) -> dict:
    """The first ``count`` machines boot at once against ``side``, from ``procs`` processes;
    with ``read_bytes``, then those that logged in read that much of their root LUN, all at
    once. The machines' processes run in cgroup ``clients``, so their own CPU is measured
    too."""
    machines = side.machines[:count]
    spec = {"machines": [asdict(m) for m in machines], "interface": side.interface,
            **side.endpoint, "timeout": timeout, "read_bytes": read_bytes, "procs": procs}
    groups = {**side.groups, CLIENTS: clients}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nbstorm-chap-") as private, \
            tempfile.TemporaryFile("w+") as errors, subprocess.Popen(
                iproute.in_netns(side.netns, [sys.executable, __file__, "--machines"]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
        assert proc.stdin is not None
        try:
            clients.add(proc.pid)  # before it has its spec: all its work is counted
            if proc.stdout is None or proc.stdout.readline() != "ready\n":
                _answer(proc, errors)  # it failed before it was ready: say why
            before, wall = _cpu(groups), time.monotonic()
            proc.stdin.write(json.dumps({**spec, "private": private}) + "\n")
            proc.stdin.flush()
            booted = _answer(proc, errors)
            wall, after = time.monotonic() - wall, _cpu(groups)
            row = {"server": side.name, "clients": count, "load_1m": round(load, 2),
                   **_phase("login", booted, wall, before, after)}
            server_cpu = sum(row["login_cpu_s"].values())
            row |= {"clients_cpu_ms_per_client": round(
                        1000 * row["login_clients_cpu_s"] / count, 1),
                    "dhcp_p50_s": round(statistics.median(
                        r.at["dhcp"] for r in booted if "dhcp" in r.at), 2)
                    if any("dhcp" in r.at for r in booted) else None,
                    "cpu_ms_per_client": round(1000 * server_cpu / count, 1),
                    "mb_per_client": round(statistics.mean(r.bytes for r in booted) / 1e6, 1)}
            if read_bytes:
                side.probe.drop_caches()
                cache, disk = side.probe.sample()
                before, wall = _cpu(groups), time.monotonic()
                proc.stdin.write("read\n")
                proc.stdin.flush()
                reads = _answer(proc, errors)
                wall, after = time.monotonic() - wall, _cpu(groups)
                cache_after, disk_after = side.probe.sample()
                row |= _phase("read", reads, wall, before, after)
                row |= {"read_cache_mib": round((cache_after - cache) / 2**20),
                        "read_disk_mib": round((disk_after - disk) / 2**20)}
                done = [r for r in reads if "read" in r.at]
                row |= {"read_mib": read_bytes >> 20, "read_mb_s": round(
                    sum(r.bytes for r in done) / 1e6 / max(r.at["read"] for r in done), 1)
                    if done else None}
            proc.stdin.close()
            proc.wait(timeout)
            return row
        finally:  # whatever a machine left running (a login past the deadline), or all on Ctrl-C
            clients.kill()


def _ratios(first: dict, second: dict) -> dict:
    """``first`` / ``second`` (below 1: ``first`` is faster or cheaper; for MB/s, slower)."""
    def ratio(key: str) -> float | None:
        return round(first[key] / second[key], 2) if first.get(key) and second.get(key) else None

    ratios = {"vs": second["server"], "p95_vs": ratio("login_p95_s"),
              "cpu_vs": ratio("cpu_ms_per_client"), "read_mb_s_vs": ratio("read_mb_s"),
              "read_p95_vs": ratio("read_p95_s"), "read_cache_vs": ratio("read_cache_mib"),
              "read_disk_vs": ratio("read_disk_mib")}
    if second["server"] == "peer":  # the names issue 17 gives them
        ratios |= {"p95_vs_peer": ratios["p95_vs"], "cpu_vs_peer": ratios["cpu_vs"]}
    return ratios


def _add_tree(group: CpuGroup, pid: int) -> None:
    """Serve and what runs below it (its network part, TFTP workers): started before they
    could be put in the cgroup, so they go in one by one."""
    for member in lab.process_tree(pid):
        with suppress(ProcessLookupError):
            group.add(member)


def _lab(name: str, storage: lab.LabStorage, count: int, lun_size: str | None,
         group: Callable[[str], CpuGroup], cleanup: ExitStack, roots: Roots = Roots(),
         parent: Path | None = None) -> LabRun:
    """A lab on ``storage`` (in a directory under ``parent``) with ``count`` clients of
    ``roots`` registered and their targets made, its servers each in a cgroup: serve, tgtd
    and, on Ceph, the cluster's daemons."""
    groups = {"serve": group(f"{name}-serve"), "tgtd": group(f"{name}-tgtd")}
    if storage is lab.LabStorage.CEPH:
        groups["ceph"] = group(f"{name}-ceph")
    lab_dir = Path(tempfile.mkdtemp(prefix=f"netboot-storm-{name}-", dir=parent))
    lab_dir.chmod(0o711)  # serve's network part (the netboot user) passes it: a split serve
    cleanup.callback(shutil.rmtree, lab_dir, ignore_errors=True)
    progress(f"lab {name} on {storage} in {lab_dir} (discovery CHAP off: tgt holds at most "
             "16 discovery accounts)")
    cleanup.callback(lab.down, lab_dir)
    state = lab.up(lab_dir, 0, discovery_auth=False, cache_dir=LAB_CACHE, vlan=VLAN,
                   storage=storage, **({"lun_size": lun_size} if lun_size else {}),
                   say=lambda line: progress(f"  {line}"))
    _add_tree(groups["serve"], state.pids["serve"])
    if (tgtd := tgtd_pid(state.tgt_control_port)) is None:
        raise SystemExit(f"no tgtd on control port {state.tgt_control_port} after lab up")
    groups["tgtd"].add(tgtd)
    if state.ceph is not None:
        cluster = ceph.load(Path(state.ceph.directory))
        assert cluster is not None
        for pid in cluster.pids.values():  # mon, mgr, osd
            groups["ceph"].add(pid)
    clients = _register(state, count, roots)
    _wait_for_targets(state, len(clients))
    topo = load_topology(lab_dir)
    assert topo is not None
    return LabRun(state, clients, topo, load_config(state.config), groups)


def _fixed_chap(run: LabRun) -> None:
    """serve started again with ``target.rotate_chap: never``: each machine keeps the CHAP
    secrets it was registered with, as the peer's machines do."""
    path = Path(run.state.config)
    data = yaml.safe_load(path.read_text())
    data.setdefault("target", {})["rotate_chap"] = ChapRotation.NEVER.value
    progress("netboot: target.rotate_chap: never (serve started again)")
    with run.serve_stopped():
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    run.config = load_config(path)


def _netboot_side(name: str, run: LabRun, cleanup: ExitStack) -> Side:
    """The lab's serve and tgtd, booted against from a namespace of the machines' own."""
    machines = [_machine(c) for c in run.clients]
    netns, interface = _machines_side(run.topo.netns, run.topo.bridge, machines,
                                      run.topo.address.network.prefixlen)
    cleanup.callback(iproute.delete_netns, netns)
    return Side(name, machines, netns, interface,
                {"server": str(run.topo.server), "http_port": run.config.server.http_port,
                 "iscsi_port": run.config.target.portal_port}, run.groups,
                CacheProbe.holding(run.state.lab_dir))


def _peer_side(netboot: Side, run: LabRun, group: Callable[[str], CpuGroup],
               cleanup: ExitStack) -> Side:
    """The peer in ``run``'s lab namespace for the same machines; its turn stops serve."""
    groups = {"dnsmasq": group("dnsmasq"), "httpd": group("httpd"), "tgtd": group("peer-tgtd")}
    topo, clients = run.topo, run.clients[:PEER_MAX_CLIENTS]
    work = run.state.lab_dir / "peer"
    peer = Peer(topo, work, work / "root", work / "dnsmasq.conf", free_control_port())
    _peer_files(_peer_config(run.config), clients, peer.root)
    peer.dnsmasq_conf.write_text(_dnsmasq_conf(
        topo, clients, f"http://{topo.server}:{PEER_HTTP_PORT}", peer.work / "dnsmasq.leases"))
    cleanup.callback(forget_control_port, peer.tgt_control_port)
    cleanup.callback(stop_tgtd, peer.tgt_control_port)
    progress(f"peer: dnsmasq, busybox httpd on port {PEER_HTTP_PORT}, tgtd on port "
             f"{PEER_ISCSI_PORT} (control port {peer.tgt_control_port})")
    groups["tgtd"].add(_peer_tgtd(topo, peer.tgt_control_port, clients,
                                  peer.work / "peer-tgtd.log"))

    @contextmanager
    def turn() -> Iterator[None]:  # one DHCP server on the VLAN at a time
        with run.serve_stopped(), _peer_serving(peer, groups):
            yield

    return replace(netboot, name="peer", groups=groups,
                   endpoint={**netboot.endpoint, "http_port": PEER_HTTP_PORT,
                             "iscsi_port": PEER_ISCSI_PORT}, turn=turn,
                   max_clients=PEER_MAX_CLIENTS)


def _shared_disk(cleanup: ExitStack) -> Path:
    """An XFS with reflink for both labs of storage overlay, on a loop device with direct
    I/O (its reads are the host disk's, never the host's page cache of the file behind it),
    so the clones are reflinks, as on a boot server's XFS, and its reads are counted alone."""
    work = Path(tempfile.mkdtemp(prefix="netboot-storm-disk-"))
    cleanup.callback(shutil.rmtree, work, ignore_errors=True)
    backing, mount = work / "xfs.img", work / "mnt"
    with backing.open("wb") as disk:
        disk.truncate(SHARED_DISK_SIZE)
    device = subprocess.run(["losetup", "--direct-io=on", "--find", "--show", str(backing)],
                            capture_output=True, text=True, check=True).stdout.strip()
    cleanup.callback(subprocess.run, ["losetup", "--detach", device], check=False)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", device], check=True)
    mount.mkdir()
    subprocess.run(["mount", device, str(mount)], check=True)
    cleanup.callback(subprocess.run, ["umount", str(mount)], check=False)
    mount.chmod(0o711)  # serve's network part (the netboot user) passes it
    progress(f"XFS (reflink) on {device} (direct I/O) at {mount}")
    return mount


def _shared_image(directory: Path) -> Path:
    """An ext4 image of :data:`SHARED_IMAGE_SIZE` bytes, most of it one file of random
    bytes (mke2fs -d, no mount): what every machine reads is data, not holes."""
    content = directory / "content"
    content.mkdir()
    with (content / "random").open("wb") as out:
        for _ in range((SHARED_IMAGE_SIZE >> 20) - 16):
            out.write(os.urandom(1 << 20))
    image = directory / f"{SHARED_IMAGE}.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(content), str(image),
                    f"{SHARED_IMAGE_SIZE >> 20}M"], check=True, capture_output=True)
    shutil.rmtree(content)
    return image


def _sides(args: argparse.Namespace, cleanup: ExitStack) -> list[Side]:
    """The two sides compared, the one measured first: netboot and the peer (storage
    file), netboot on RBD and netboot on files, two labs (storage rbd), or netboot with
    every root on one shared version and with full clones of it, two labs (storage
    overlay)."""
    cgroups = cgroup2_root()

    def group(name: str) -> CpuGroup:
        made = CpuGroup(cgroups, name)
        cleanup.callback(made.remove)  # after everything below has stopped
        return made

    count = max(args.clients)
    if args.storage == "overlay":
        disk = _shared_disk(cleanup)
        image = _shared_image(disk)
        return [_netboot_side(f"netboot {name}", _lab(
                    name, lab.LabStorage.FILE, count, None, group, cleanup,
                    Roots(image, method), disk), cleanup)
                for name, method in (("overlay", BootMethod.OVERLAY),
                                     ("clones", BootMethod.INITRAMFS))]
    if args.storage == "rbd":  # the lab's default LUN size: room for the read
        return [_netboot_side(f"netboot {name}", _lab(name, storage, count, None, group,
                                                      cleanup), cleanup)
                for name, storage in (("rbd", lab.LabStorage.CEPH),
                                      ("file", lab.LabStorage.FILE))]
    run = _lab("file", lab.LabStorage.FILE, count, LUN_SIZE, group, cleanup)
    if args.chap is ChapRotation.NEVER:
        _fixed_chap(run)
    netboot = _netboot_side("netboot", run, cleanup)
    return [netboot, _peer_side(netboot, run, group, cleanup)]


def _run(args: argparse.Namespace, cleanup: ExitStack) -> list[dict]:
    """Both sides up (``cleanup`` undoes each), then their turns for each N, in alternating
    order; the first side's row carries first / second (the peer sits out an N above its
    :data:`PEER_MAX_CLIENTS`)."""
    sides = _sides(args, cleanup)
    clients = CpuGroup(cgroup2_root(), CLIENTS)
    cleanup.callback(clients.remove)
    read_bytes = {"rbd": READ_BYTES, "overlay": SHARED_READ_BYTES}.get(args.storage, 0)
    rows = []
    for i, count in enumerate(args.clients):
        measured = {}
        for side in sides if i % 2 == 0 else sides[::-1]:
            if side.max_clients is not None and count > side.max_clients:
                continue
            progress(f"storm of {count} machines: {side.name} "
                     f"(load {os.getloadavg()[0]:.2f}) ...")
            with side.turn():
                measured[side.name] = _storm(side, count, clients, args.timeout, read_bytes,
                                             args.machine_procs)
        first, *second = (measured[side.name] for side in sides if side.name in measured)
        rows += [{**first, **_ratios(first, second[0])}, *second] if second else [first]
    return rows


def _cpu_text(cpu: dict[str, float]) -> str:
    return " + ".join(f"{name} {s}" for name, s in cpu.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--storage", choices=("file", "rbd", "overlay"), default="file",
                        help="file: netboot against the peer, roots in files; rbd: netboot "
                             "with roots on RBD against netboot with roots in files, and "
                             f"a read of each root's first {READ_BYTES >> 20} MiB; overlay: "
                             "every root on one shared version against full clones of it, "
                             f"and a read of each root's first {SHARED_READ_BYTES >> 20} MiB")
    parser.add_argument("--chap", type=ChapRotation, choices=list(ChapRotation),
                        default=ChapRotation.PER_BOOT,
                        help="netboot's target.rotate_chap (storage file): per-boot, the "
                             "default, renews each machine's CHAP secrets at each boot, which "
                             "tgt can only do by deleting and making its accounts again; "
                             "never keeps them, as the peer does")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds one phase may take before unfinished machines count as "
                             "failed")
    parser.add_argument("--machine-procs", type=int, default=os.cpu_count() or 1,
                        help="processes the simulated machines are shared out among "
                             "(default: one per CPU)")
    parser.add_argument("--json", action="store_true", help="JSON for scripts.")
    parser.add_argument("--machines", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.machines:  # the machines' side, started by the run below inside its namespace
        machines_side(sys.stdin, sys.stdout)
        return 0
    if os.geteuid() != 0:
        parser.error("needs root: network namespaces, tgtd, raw sockets, cgroups")
    storage_tools = {"rbd": ("qemu-io", *ceph.PROGRAMS),
                     "overlay": ("qemu-io", "losetup", "mkfs.xfs", "mke2fs")}
    tools = ("tgtd", *storage_tools.get(args.storage, ("dnsmasq", "busybox")))
    for tool in tools:
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (see debian-packages.txt)")
    try:
        Libiscsi()
    except OSError:
        parser.error(f"{LIBISCSI} is not installed (libiscsi7, see debian-packages.txt)")
    with signals_interrupt(), ExitStack() as cleanup:
        rows = _run(args, cleanup)
    if args.json:
        emit_json(rows)
        return 0
    print(table(["machines", "server", "logged in", "login p50", "p95", "max", "DHCP p50",
                 "server CPU s", "CPU/client", "cores", "clients CPU s", "clients CPU/client",
                 "MB/client", "load", "p95 vs", "CPU vs"],
                [(r["clients"], r["server"], r["login_ok"], r["login_p50_s"], r["login_p95_s"],
                  r["login_max_s"], r["dhcp_p50_s"], _cpu_text(r["login_cpu_s"]),
                  f'{r["cpu_ms_per_client"]} ms', r["login_server_cores"],
                  r["login_clients_cpu_s"], f'{r["clients_cpu_ms_per_client"]} ms',
                  r["mb_per_client"], r["load_1m"],
                  r.get("p95_vs", ""), r.get("cpu_vs", "")) for r in rows]))
    if "read_ok" in rows[0]:
        print(f"\nthen, from dropped caches, each machine that logged in reads the first "
              f"{rows[0]['read_mib']} MiB of its root, all at once (qemu-io); page cache: "
              "growth of the host's Cached; disk: bytes read from the labs' block device")
        print(table(["machines", "server", "read", "MB/s", "p50", "p95", "max",
                     "page cache MiB", "disk MiB", "server CPU s", "cores", "clients CPU s",
                     "MB/s vs", "p95 vs", "cache vs", "disk vs"],
                    [(r["clients"], r["server"], r["read_ok"], r["read_mb_s"], r["read_p50_s"],
                      r["read_p95_s"], r["read_max_s"], r["read_cache_mib"],
                      r["read_disk_mib"], _cpu_text(r["read_cpu_s"]),
                      r["read_server_cores"], r["read_clients_cpu_s"],
                      r.get("read_mb_s_vs", ""), r.get("read_p95_vs", ""),
                      r.get("read_cache_vs", ""), r.get("read_disk_vs", "")) for r in rows]))
    if (compared := next((r for r in rows if "vs" in r), None)) is not None:
        print(f"vs: {compared['server']} / {compared['vs']} (below 1: {compared['server']} is "
              "faster or cheaper; for MB/s, slower)")
    for r in rows:
        for stage in ("login", "read"):
            if r.get(f"{stage}_failures"):
                print(f'{r["clients"]} machines, {r["server"]}, {stage}: failures '
                      f'{r[f"{stage}_failures"]}; first: {r[f"{stage}_first_failure"]}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
