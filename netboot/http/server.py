"""The HTTP server iPXE fetches the kernel, the initrds and its script from.

The stdlib's ThreadingHTTPServer: a boot needs a handful of requests per
client, and the large ones (kernel, base initramfs) go out with sendfile(2),
so the copying happens in the kernel without the GIL. A thread per connection
is then cheap enough for a boot storm and keeps the code short; an asyncio
server would add a second concurrency model beside the TFTP loop for no
measured gain (see bench/tftp_bench.py for the figures).

URL layout (the contract with DHCP and /init, built in :mod:`netboot.boot.urls`):
``/boot/vmlinuz``, ``/boot/initramfs.img``, ``/clients/<mac>/boot.ipxe``,
``/clients/<mac>/client.img``, ``/report/<mac>/<stage>[?detail=...]``, and any
other path a file from the TFTP root. Names resolve through
:class:`netboot.boot.catalog.Catalog`, so TFTP and HTTP apply the same rules.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from urllib.parse import parse_qs, unquote, urlsplit

from netboot.boot import urls
from netboot.boot.catalog import AccessDenied, Catalog, Content
from netboot.boot.content import FileSource
from netboot.errors import NotFound
from netboot.inventory.recorder import StageRecorder
from netboot.inventory.stages import REPORTED_STAGES, Stage
from netboot.log import client_log
from netboot.threads import start_thread

log = logging.getLogger(__name__)

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_DETAIL = 200  # characters of a failure detail kept in the log


class RangeNotSatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, inclusive, or None to send the whole file.

    Several ranges or a header that does not parse are ignored (RFC 9110
    14.2 lets a server do so); a range wholly past the end raises.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - count), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid: ignored, like a header that does not parse
    if start >= size:
        raise RangeNotSatisfiable
    return start, end


class BootRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: iPXE fetches kernel and initrds in a row
    server_version = "netboot"
    timeout = 60  # a client that stops reading frees its thread after this long
    server: BootHTTPServer

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def _serve(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        peer = IPv4Address(self.client_address[0])
        catalog = self.server.catalog
        path = url.path
        try:
            path = unquote(url.path, errors="strict")  # once: "%2e%2e" is ".." from here on
            if path.startswith(f"/{urls.REPORT}/"):
                self._report(path, url.query, peer, record=send_body)
                return
            if not path.startswith("/"):
                raise NotFound("not a path")
            content = catalog.open(path[1:], peer)
        except NotFound:
            self._plain(HTTPStatus.NOT_FOUND, "not found\n")
            return
        except AccessDenied as err:
            log.warning("refused %r to %s: %s", path, peer, err)
            self._plain(HTTPStatus.FORBIDDEN, "forbidden\n")
            return
        except UnicodeDecodeError:
            self._plain(HTTPStatus.BAD_REQUEST, "bad percent-encoding\n")
            return
        try:
            self._send(content, peer, send_body)
        finally:
            content.close()

    def _send(self, content: Content, peer: IPv4Address, send_body: bool) -> None:
        size = content.size
        try:
            span = parse_range(self.headers.get("Range"), size)
        except RangeNotSatisfiable:
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
        seconds = max(time.monotonic() - began, 1e-6)
        logger = client_log(log, content.mac) if content.mac else log
        logger.info("sent %s to %s: %d bytes in %.3f s (%.1f MB/s)%s", content.name, peer,
                    count, seconds, count / seconds / 1e6,
                    f", range {start}-{end}" if span else "")

    def _report(self, path: str, query: str, peer: IPv4Address, record: bool) -> None:
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
        self.send_response(HTTPStatus.NO_CONTENT)
        self.end_headers()

    def _plain(self, status: HTTPStatus, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class BootHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a boot storm connects at once

    def __init__(self, address: tuple[str, int], catalog: Catalog,
                 stages: StageRecorder) -> None:
        self.catalog = catalog
        self.stages = stages
        super().__init__(address, BootRequestHandler)


class HttpServer:
    """A :class:`~netboot.serve.service.Service` running :class:`BootHTTPServer` in a thread."""

    name = "http"

    def __init__(self, address: IPv4Address, port: int, catalog: Catalog,
                 stages: StageRecorder) -> None:
        self.address = address
        self.port = port
        self.catalog = catalog
        self.stages = stages
        self._server: BootHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = BootHTTPServer((str(self.address), self.port), self.catalog, self.stages)
        self.port = self._server.server_address[1]
        server = self._server
        self._thread = start_thread(self.name, "http", lambda: server.serve_forever(0.5))
        log.info("HTTP on %s:%d", self.address, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
