"""The admin interface's HTTP server: a :class:`~netboot.serve.service.Service` of the
root part of ``netboot serve`` (adding a client makes its LUN and target, which needs
root), on ``admin.address:admin.port`` (loopback by default, off the boot VLAN).

Its traffic is a scrape every few seconds and an admin's browser, so it is the
standard library's threading server; the boot path's own HTTP server is elsewhere
(:mod:`netboot.http.server`) and shares nothing with it.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from netboot.admin import metrics
from netboot.admin.api import MAX_BODY, Context, Request, Response, Router, error
from netboot.admin.token import ensure_token
from netboot.config import Config
from netboot.counters import read_snapshots, snapshot_dir
from netboot.errors import NetbootError
from netboot.inventory.store import InventoryFactory
from netboot.threads import start_thread

log = logging.getLogger(__name__)

ADMIN_LISTENING = "admin interface on"  # logged with the URL once it listens (port 0 too)


class _Handler(BaseHTTPRequestHandler):
    server: _AdminHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may sit idle or half-sent

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        text = self.headers.get("Content-Length") or "0"
        length = int(text) if text.isdigit() else -1
        if not 0 <= length <= MAX_BODY:
            response = error(HTTPStatus.BAD_REQUEST if length < 0
                             else HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"Content-Length {text!r} is not a length of at most {MAX_BODY}")
            self.close_connection = True  # the body, if any, is not read
        else:
            request = Request(self.command, unquote(url.path), url.query, self.client_address[0],
                              self.headers.get("Authorization"), self.rfile.read(length))
            response = self.server.router.handle(request)
        self._reply(response)

    def _reply(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_DELETE = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        log.debug("admin %s %s", self.client_address[0], format % args)


class _AdminHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        super().__init__(address, _Handler)


class AdminService:
    """``/metrics``, the fleet page and the JSON API."""

    name = "admin"

    def __init__(self, config: Config, open_inventory: InventoryFactory) -> None:
        self.config = config
        self.open_inventory = open_inventory
        self.port = config.admin.port
        self._server: _AdminHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        admin = self.config.admin
        token = ensure_token(self.config.admin_token_path)
        sources = metrics.Sources(partial(read_snapshots,
                                          snapshot_dir(self.config.storage.state_dir)),
                                  self.open_inventory)
        router = Router(Context(self.config, self.open_inventory, token, sources))
        try:
            self._server = _AdminHTTPServer((str(admin.address), admin.port), router)
        except OSError as err:
            raise NetbootError(f"the admin interface cannot listen on {admin.address}:"
                               f"{admin.port}: {err.strerror or err} (admin.address, "
                               "admin.port)") from None
        self.port = self._server.server_address[1]
        self._thread = start_thread(self.name, "admin", self._server.serve_forever)
        log.info("%s http://%s:%d/ (metrics, fleet page, API)", ADMIN_LISTENING,
                 admin.address, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
