"""The HTTP server iPXE fetches the kernel, the initrds and its script from.

The stdlib's HTTP request handler on a fixed pool of threads: a boot needs a
handful of requests per client, and the large ones (kernel, base initramfs) go
out with sendfile(2), so the copying happens in the kernel without the GIL. An
asyncio server would add a second concurrency model beside the TFTP loop for
no measured gain (see bench/tftp_bench.py for the figures).

Hostile peers are bounded three ways. The accept loop takes a connection only
while a handler thread is free, so past ``server.http_threads`` connections
wait in the kernel's listen backlog: a boot storm is delayed, not failed, and a
waiting connection is served the moment a thread frees, where a 503 would rely
on the client honouring Retry-After (iPXE does; /init's busybox wget does not).
An address holding ``server.http_max_per_source`` connections is answered 503
with Retry-After at once, by the accept loop, without a thread. Reading a
request, from the wait for its first byte to its last header, must end within
``server.http_request_timeout`` seconds (a client trickling its headers is cut
off), and a kept-alive connection must begin its next request within
:data:`KEEPALIVE_IDLE`; sending the answer to a slow reader is bounded per send
by :data:`IO_TIMEOUT` only.

URL layout (the contract with DHCP and /init, built in :mod:`netboot.boot.urls`):
``/boot/vmlinuz``, ``/boot/initramfs.img``, ``/clients/<mac>/boot.ipxe``,
``/clients/<mac>/client.img``, ``/report/<mac>/<stage>[?detail=...]``, and any
other path a file from the TFTP root. Names resolve through
:class:`netboot.boot.catalog.Catalog`, so TFTP and HTTP apply the same rules.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import queue
import re
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import parse_qs, unquote, urlsplit

from netboot.boot import urls
from netboot.boot.catalog import AccessDenied, Catalog, Content, NotReady
from netboot.boot.content import FileSource
from netboot.config import ServerConfig
from netboot.counters import Kind, Sample
from netboot.errors import NotFound
from netboot.inventory.recorder import StageRecorder
from netboot.inventory.stages import REPORTED_STAGES, Stage
from netboot.log import client_log
from netboot.threads import start_thread

log = logging.getLogger(__name__)

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_DETAIL = 200  # characters of a failure detail kept in the log
MAX_DIGITS = 18  # digits of a Range position read as written: 10**18 bytes is past any file
IO_TIMEOUT = 60  # seconds one read or send may block: a client that stops reading is let go
RETRY_AFTER = 5  # seconds a refused client is told to wait (RFC 9110 10.2.3)
# A private file whose boot window is still being prepared: the request waits this long
# (not the catalog's READY_WAIT), then gets 503 with Retry-After NOT_READY_RETRY (RFC 9110
# 15.6.4), which iPXE obeys (src/net/tcp/httpcore.c, http_parse_retry_after): a storm's
# waiting boots hold no thread.
NOT_READY_WAIT = 2.0
NOT_READY_RETRY = 1
# Seconds a kept-alive connection may wait for its next request: iPXE asks for the initrds
# right after the kernel, then boots the kernel without closing, which would otherwise hold
# a thread for the whole request deadline.
KEEPALIVE_IDLE = 5
POLL_INTERVAL = 0.5  # seconds between the accept loop's looks at its stop flag
STOP_GRACE = 5.0  # seconds stop() waits for a handler thread to end


class Refusal(StrEnum):
    """Why a connection or request was turned away; counted, logged at stop."""

    PER_SOURCE = "per-source limit"  # 503: the address holds its maximum of connections
    DEADLINE = "request deadline"  # closed: no whole request line and headers in time
    OVERSIZED = "oversized request"  # 414/431 from the parser: a line or header set too long
    MALFORMED = "malformed request"  # 400/501/505 from the parser
    RANGE = "unsatisfiable range"  # 416
    NOT_READY = "boot window not ready"  # 503 + Retry-After: the client asks again


_REFUSAL_OF_STATUS = {HTTPStatus.REQUEST_URI_TOO_LONG: Refusal.OVERSIZED,
                      HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: Refusal.OVERSIZED}

BUSY = (f"HTTP/1.1 {HTTPStatus.SERVICE_UNAVAILABLE.value} "
        f"{HTTPStatus.SERVICE_UNAVAILABLE.phrase}\r\n"
        f"Retry-After: {RETRY_AFTER}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()


@dataclass(frozen=True)
class HttpLimits:
    """The bounds one hostile peer meets (``server.http_*``)."""

    threads: int
    per_source: int
    request_timeout: float

    @classmethod
    def of(cls, server: ServerConfig) -> HttpLimits:
        return cls(server.http_threads, server.http_max_per_source, server.http_request_timeout)


@dataclass
class Stats:
    """Connections served and refusals by reason, counted from every handler thread."""

    connections: int = 0
    requests: int = 0
    files: int = 0  # responses with a file's bytes (whole or a range)
    bytes: int = 0
    refused: Counter[Refusal] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def served(self) -> None:
        with self._lock:
            self.connections += 1

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def sent(self, count: int) -> None:
        with self._lock:
            self.files += 1
            self.bytes += count

    def samples(self) -> list[Sample]:
        """The counts as the admin interface's metrics (netboot.counters)."""
        with self._lock:
            return [
                Sample("http_connections", Kind.COUNTER, "HTTP connections accepted",
                       self.connections),
                Sample("http_requests", Kind.COUNTER, "HTTP requests read", self.requests),
                Sample("http_files_sent", Kind.COUNTER, "HTTP responses carrying a file",
                       self.files),
                Sample("http_sent_bytes", Kind.COUNTER, "Bytes of files sent over HTTP",
                       self.bytes),
                *(Sample("http_refused", Kind.COUNTER, "HTTP requests or connections refused, "
                         "by reason", n, (("reason", reason.name.lower()),))
                  for reason, n in sorted(self.refused.items())),
            ]

    def count(self, reason: Refusal) -> None:
        with self._lock:
            self.refused[reason] += 1

    def line(self) -> str:
        with self._lock:
            refused = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items())) or "none"
            return f"connections {self.connections}, refused: {refused}"


class Sources:
    """Open connections per source address, at most ``limit`` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def admit(self, source: str) -> bool:
        with self._lock:
            if self._open[source] >= self.limit:
                return False
            self._open[source] += 1
            return True

    def release(self, source: str) -> None:
        with self._lock:
            self._open[source] -= 1
            if not self._open[source]:
                del self._open[source]


class RangeNotSatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, inclusive, or None to send the whole file.

    Several ranges or a header that does not parse are ignored (RFC 9110
    14.2 lets a server do so); a range wholly past the end raises. A position
    of any length is read (past :data:`MAX_DIGITS` digits it is past the end).
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        count = _position(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - count), size - 1
    start = _position(first)
    end = size - 1 if last == "" else min(_position(last), size - 1)
    if last != "" and _position(last) < start:
        return None  # invalid: ignored, like a header that does not parse
    if start >= size:
        raise RangeNotSatisfiable
    return start, end


def _position(digits: str) -> int:
    """A Range position; one too long to convert (int() refuses 4,300 digits) is 10**18."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= MAX_DIGITS else 10 ** MAX_DIGITS


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each bounded by ``io_timeout`` and all of them by a deadline.

    The per-operation timeout alone lets a client sending a byte a second hold
    a thread for ever. :meth:`begin` starts a request: its first byte must
    come by ``idle``, its last by ``deadline``; ``expired`` says the deadline,
    not the idle wait, ended it.
    """

    def __init__(self, sock: socket.socket, io_timeout: float) -> None:
        super().__init__()
        self.sock = sock
        self.io_timeout = io_timeout
        self.deadline = self.idle = math.inf
        self.started = self.expired = False

    def begin(self, deadline: float, idle: float) -> None:
        self.deadline, self.idle = deadline, min(idle, deadline)
        self.started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        until = self.deadline if self.started else self.idle
        left = until - time.monotonic()
        if left > 0:
            self.sock.settimeout(min(self.io_timeout, left))
            try:
                count = self.sock.recv_into(buffer)
                self.started = True
                return count
            except TimeoutError:
                if left >= self.io_timeout:
                    raise  # the per-operation timeout, not the deadline
            finally:
                self.sock.settimeout(self.io_timeout)
        self.expired = until == self.deadline
        raise TimeoutError("request deadline passed" if self.expired else "idle between requests")


class BootRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: iPXE fetches kernel and initrds in a row
    server_version = "netboot"
    # A request line that does not parse is answered as HTTP/1.0, with a status line, not
    # as HTTP/0.9 (a bare body): no boot client speaks 0.9, and a status line can be read.
    default_request_version = "HTTP/1.0"
    timeout = IO_TIMEOUT
    server: BootHTTPServer

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket's own file: replaced, not left holding the socket open
        self._reader = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        self._kept_alive = False

    def handle_one_request(self) -> None:
        """One request, read within the deadline; on a kept-alive connection it must also
        begin within :data:`KEEPALIVE_IDLE`, or the connection is closed (not a refusal)."""
        now = time.monotonic()
        self._reader.begin(deadline=now + self.server.limits.request_timeout,
                           idle=now + KEEPALIVE_IDLE if self._kept_alive else math.inf)
        self._kept_alive = True
        super().handle_one_request()
        if self._reader.expired:
            self.server.stats.count(Refusal.DEADLINE)
            log.debug("closed %s: no whole request in %s s", self.client_address[0],
                      self.server.limits.request_timeout)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The parser's refusals (400, 414, 431, 501, 505), counted by reason."""
        self.server.stats.count(_REFUSAL_OF_STATUS.get(code, Refusal.MALFORMED))
        super().send_error(code, message, explain)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def _serve(self, send_body: bool) -> None:
        self.server.stats.request()
        url = urlsplit(self.path)
        peer = ip_address(self.client_address[0])
        catalog = self.server.catalog
        path = url.path
        try:
            path = unquote(url.path, errors="strict")  # once: "%2e%2e" is ".." from here on
            if path.startswith(f"/{urls.REPORT}/"):
                self._report(path, url.query, peer, record=send_body)
                return
            if not path.startswith("/"):
                raise NotFound("not a path")
            content = catalog.open(path[1:], peer, spend=send_body, wait=NOT_READY_WAIT)
        except NotFound:
            self._plain(HTTPStatus.NOT_FOUND, "not found\n")
            return
        except NotReady as err:
            client_log(log, err.mac).info("asked %s to retry %r in %d s: %s", peer,
                                          urls.redact(path), NOT_READY_RETRY, err)
            self.server.stats.count(Refusal.NOT_READY)
            self._plain(HTTPStatus.SERVICE_UNAVAILABLE, "boot window not ready\n",
                        ("Retry-After", str(NOT_READY_RETRY)))
            return
        except AccessDenied as err:
            log.warning("refused %r to %s: %s", urls.redact(path), peer, err)
            self._plain(HTTPStatus.FORBIDDEN, "forbidden\n")
            return
        except UnicodeDecodeError:
            self._plain(HTTPStatus.BAD_REQUEST, "bad percent-encoding\n")
            return
        try:
            self._send(content, peer, send_body)
        finally:
            content.close()

    def _send(self, content: Content, peer: IPv4Address | IPv6Address,
              send_body: bool) -> None:
        size = content.size
        try:
            span = parse_range(self.headers.get("Range"), size)
        except RangeNotSatisfiable:
            self.server.stats.count(Refusal.RANGE)
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = span if span is not None else (0, size - 1)
        count = end - start + 1
        self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain" if content.name.endswith(".ipxe")
                         else "application/octet-stream")
        self.send_header("Content-Length", str(count))
        self.send_header("Accept-Ranges", "bytes")
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not send_body:
            return
        if content.stage is not None and content.mac is not None:
            self.server.stages.record(content.mac, content.stage)
        began = time.monotonic()
        if count > 0:
            self.wfile.flush()
            if isinstance(content.source, FileSource):
                with open(content.source.fd, "rb", closefd=False) as f:
                    self.connection.sendfile(f, start, count)
            else:
                self.wfile.write(content.source.read(start, count))
        self.server.stats.sent(count)
        seconds = max(time.monotonic() - began, 1e-6)
        logger = client_log(log, content.mac) if content.mac else log
        logger.info("sent %s to %s: %d bytes in %.3f s (%.1f MB/s)%s", content.name, peer,
                    count, seconds, count / seconds / 1e6,
                    f", range {start}-{end}" if span else "")

    def _report(self, path: str, query: str, peer: IPv4Address | IPv6Address,
                record: bool) -> None:
        """``/report/<mac>/<stage>``: /init telling how far its boot got."""
        parts = path.split("/")
        if len(parts) != 4:
            raise NotFound("not a report path")
        _, _, mac_text, stage_text = parts
        catalog = self.server.catalog
        with catalog.inventories.borrow() as inventory:
            client = catalog.owner(inventory, mac_text, peer)
        if client is None or stage_text not in REPORTED_STAGES:
            raise NotFound(f"no client {mac_text} or no stage {stage_text}")
        if record:
            detail = parse_qs(query).get("detail", [""])[0]
            detail = "".join(c if c.isprintable() else "?" for c in detail)[:MAX_DETAIL]
            self.server.stages.record(client.mac, Stage(stage_text), detail or None)
            if stage_text == Stage.ROOT:
                catalog.close_window(client.mac)
        self.send_response(HTTPStatus.NO_CONTENT)
        self.end_headers()

    def _plain(self, status: HTTPStatus, text: str, *headers: tuple[str, str]) -> None:
        body = text.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class BootHTTPServer(HTTPServer):
    """The listening socket, a fixed pool of handler threads and the loop that feeds it.

    :meth:`serve` accepts only while a thread is free and hands each
    connection to the pool through a queue, so no more than
    ``limits.threads`` connections are ever being handled and the rest wait,
    unaccepted, in the kernel's backlog of ``request_queue_size``.
    """

    allow_reuse_address = True
    # The waiting room past the thread pool: a boot storm of hundreds connects at once
    # (the kernel caps it at net.core.somaxconn).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], catalog: Catalog, stages: StageRecorder,
                 limits: HttpLimits) -> None:
        self.catalog = catalog
        self.stages = stages
        self.limits = limits
        self.stats = Stats()
        self._sources = Sources(limits.per_source)
        self._free = threading.Semaphore(limits.threads)
        self._queue: queue.SimpleQueue[tuple[socket.socket, tuple[str, int]] | None] = \
            queue.SimpleQueue()
        self._open: set[socket.socket] = set()
        self._closing = False
        self._lock = threading.Lock()
        super().__init__(address, BootRequestHandler)
        self.socket.setblocking(False)  # a connection reset between select and accept
        self._workers = [start_thread("http", f"http-{n}", self._work)
                         for n in range(limits.threads)]

    def serve(self, stop: threading.Event) -> None:
        """Accept connections until ``stop`` is set, each only once a thread is free."""
        with selectors.DefaultSelector() as ready:
            ready.register(self.socket, selectors.EVENT_READ)
            while not stop.is_set():
                if not self._free.acquire(timeout=POLL_INTERVAL):
                    continue
                if not ready.select(POLL_INTERVAL) or not self._accept():
                    self._free.release()

    def _accept(self) -> bool:
        """Take one connection to the pool; False if none came or it was refused."""
        try:
            conn, peer = self.socket.accept()
        except OSError:  # gone before accept, or no descriptor left: the loop goes on
            return False
        if not self._sources.admit(peer[0]):
            self.stats.count(Refusal.PER_SOURCE)
            log.debug("refused a connection from %s: %d open", peer[0], self.limits.per_source)
            _refuse(conn)
            return False
        self._queue.put((conn, peer))
        return True

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            conn, peer = item
            with self._lock:
                closing = self._closing
                self._open.add(conn)
            try:
                if not closing:
                    self.stats.served()
                    self.finish_request(conn, peer)
            except OSError as err:  # reset or broken pipe: the client's business
                log.debug("HTTP connection from %s ended: %s", peer[0], err)
            except Exception:
                log.exception("HTTP connection from %s failed", peer[0])
            finally:
                with self._lock:
                    self._open.discard(conn)
                self.shutdown_request(conn)
                self._sources.release(peer[0])
                self._free.release()

    def close(self) -> None:
        """End the pool after :meth:`serve` returned: open connections are cut, not awaited."""
        with self._lock:
            self._closing = True
            for conn in self._open:
                with contextlib.suppress(OSError):  # already closed by its peer
                    conn.shutdown(socket.SHUT_RDWR)
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=STOP_GRACE)
        self.server_close()


class BootHTTPServer6(BootHTTPServer):
    """The same on an IPv6 address (an IPv6-only boot VLAN)."""

    address_family = socket.AF_INET6


def _refuse(conn: socket.socket) -> None:
    """503 with Retry-After, written without blocking and without a thread, then closed.

    Whatever the client already sent is read first: closing a socket with
    unread data sends a reset, which can destroy the 503 before it is read.
    """
    try:
        conn.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # nothing sent yet
            conn.recv(65536)
        conn.send(BUSY)
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the client is gone: nothing to tell it
    finally:
        conn.close()


class HttpServer:
    """A :class:`~netboot.serve.service.Service` running :class:`BootHTTPServer`."""

    name = "http"

    def __init__(self, address: IPv4Address | IPv6Address, port: int, catalog: Catalog,
                 stages: StageRecorder, limits: HttpLimits) -> None:
        self.address = address
        self.port = port
        self.catalog = catalog
        self.stages = stages
        self.limits = limits
        self._server: BootHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def stats(self) -> Stats:
        assert self._server is not None, "not started"
        return self._server.stats

    def samples(self) -> list[Sample]:
        return self._server.stats.samples() if self._server is not None else []

    def start(self) -> None:
        server_class = BootHTTPServer6 if self.address.version == 6 else BootHTTPServer
        self._server = server_class((str(self.address), self.port), self.catalog, self.stages,
                                    self.limits)
        self.port = self._server.server_address[1]
        server, stop = self._server, self._stop
        self._thread = start_thread(self.name, "http", lambda: server.serve(stop))
        log.info("HTTP on %s:%d (%d threads, %d connections per address)", self.address,
                 self.port, self.limits.threads, self.limits.per_source)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._server is not None:
            self._server.close()
            log.info("HTTP stopped: %s", self._server.stats.line())
