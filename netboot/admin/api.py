"""The admin interface's routes: a request in, a response out, no sockets here.

``GET /metrics`` (Prometheus), the fleet page (``/`` and ``/static/*``), and the JSON
API under ``/api/v1`` described by ``openapi.yaml`` beside this module. The API adds
and removes clients through the same provisioning calls as ``netboot client
add|remove``, so the same rules hold and the same messages come back, with a status
code: 400 for a bad value, 404 for a missing record, 409 for a clash, 500 when the
server could not do it (the target or the storage failed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from importlib import resources
from ipaddress import IPv4Address
from urllib.parse import parse_qs

from netboot.admin import metrics
from netboot.admin.token import authorized
from netboot.admin.views import client_detail_json, client_json, image_json, status_json
from netboot.config import Config
from netboot.errors import Conflict, NetbootError, NotFound, ValidationError
from netboot.inventory.clients import BootMethod
from netboot.inventory.store import Inventory
from netboot.names import normalize_mac
from netboot.provisioning.clients import add_client, remove_client
from netboot.size import parse_size
from netboot.storage.images import list_images
from netboot.target import open_backend

log = logging.getLogger(__name__)

API = "/api/v1"
OPENAPI = "openapi.yaml"
STATIC = "static"
JSON = "application/json"
PAGE_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
              ".css": "text/css; charset=utf-8", ".yaml": "application/yaml"}
MAX_BODY = 64 << 10  # a client record is a few hundred bytes
# What ``POST /api/v1/clients`` takes: the options of ``netboot client add``.
CLIENT_FIELDS = frozenset({"mac", "hostname", "ip", "image", "size", "boot_method"})


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query: str
    peer: str
    authorization: str | None = None
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Context:
    """What the routes work on: the config, the inventory (opened per request) and the
    counters every serve process publishes."""

    config: Config
    inventory: Callable[[], AbstractContextManager[Inventory]]
    token: str
    sources: metrics.Sources


def json_response(data: object, status: HTTPStatus = HTTPStatus.OK) -> Response:
    return Response(status, json.dumps(data, indent=1, default=str).encode() + b"\n")


def error(status: HTTPStatus, message: str) -> Response:
    return json_response({"error": message}, status)


def _packaged(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


@cache
def _shipped() -> frozenset[str]:
    """The page's files, listed once: the package does not change while serve runs."""
    return frozenset(p.name for p in resources.files(__package__).joinpath(STATIC).iterdir())


def _asset(name: str) -> Response:
    """A file of the page: package data, never a path taken from the request (the name
    must be one of the package's own)."""
    if name not in _shipped():
        return error(HTTPStatus.NOT_FOUND, f"no such file: {name}")
    suffix = name[name.rfind("."):]
    return Response(HTTPStatus.OK, _packaged(f"{STATIC}/{name}"),
                    PAGE_TYPES.get(suffix, "application/octet-stream"))


def _client_fields(body: bytes) -> dict[str, object]:
    """``POST /api/v1/clients``'s body, parsed with the CLI's own parsers."""
    try:
        data = json.loads(body or b"null")
    except ValueError as err:
        raise ValidationError(f"the body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object with at least \"mac\"")
    unknown = sorted(set(data) - CLIENT_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field(s) {', '.join(unknown)}; expected some of "
                              f"{', '.join(sorted(CLIENT_FIELDS))}")
    for key, value in data.items():
        if value is not None and not isinstance(value, str) and not (
                key == "size" and isinstance(value, int) and not isinstance(value, bool)):
            raise ValidationError(f"{key} must be a string" + (
                " or a number of bytes" if key == "size" else ""))
    if not data.get("mac"):
        raise ValidationError("mac is missing")
    size = data.get("size")
    try:
        method = BootMethod(data.get("boot_method") or BootMethod.INITRAMFS)
        size = parse_size(size) if isinstance(size, str) else size
        overlay = method is BootMethod.OVERLAY
        return {
            "mac": normalize_mac(str(data["mac"])),
            "hostname": data.get("hostname"),
            "ip": IPv4Address(data["ip"]) if data.get("ip") else None,
            "image": data.get("image"),
            # an overlay client's size is its upper layer's
            "size": None if overlay else size,
            "overlay_size": size if overlay else None,
            "boot_method": method,
        }
    except ValueError as err:
        raise ValidationError(str(err)) from None


class Router:
    """Requests to responses over one :class:`Context`."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(("/metrics", API)):
            return self._page(request)  # the page holds no data: its calls to the API do
        if not authorized(request.peer, request.authorization, self.context.token):
            return Response(HTTPStatus.UNAUTHORIZED,
                            b'{"error": "a bearer token is needed from this address"}\n',
                            headers=(("WWW-Authenticate", 'Bearer realm="netboot"'),))
        try:
            return self._route(request)
        except ValidationError as err:
            return error(HTTPStatus.BAD_REQUEST, str(err))
        except NotFound as err:
            return error(HTTPStatus.NOT_FOUND, str(err))
        except Conflict as err:
            return error(HTTPStatus.CONFLICT, str(err))
        except NetbootError as err:
            log.error("admin API %s %s: %s", request.method, request.path, err)
            return error(HTTPStatus.INTERNAL_SERVER_ERROR, str(err))

    def _page(self, request: Request) -> Response:
        if request.method != "GET":
            return error(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not served here")
        if request.path == "/":
            return _asset("index.html")
        if request.path.startswith(f"/{STATIC}/"):
            return _asset(request.path.removeprefix(f"/{STATIC}/"))
        return error(HTTPStatus.NOT_FOUND, f"no such page: {request.path}")

    def _route(self, request: Request) -> Response:
        method, path = request.method, request.path.rstrip("/")
        ctx = self.context
        if (method, path) == ("GET", "/metrics"):
            return Response(HTTPStatus.OK, metrics.render(ctx.sources), metrics.CONTENT_TYPE)
        if (method, path) == ("GET", f"{API}/{OPENAPI}"):
            return Response(HTTPStatus.OK, _packaged(OPENAPI), PAGE_TYPES[".yaml"])
        if path == f"{API}/clients":
            if method == "GET":
                with ctx.inventory() as inventory:
                    return json_response([client_json(ctx.config, c, show_secrets=False)
                                          for c in inventory.clients()])
            if method == "POST":
                return self._add(request)
        elif path.startswith(f"{API}/clients/"):
            mac = normalize_mac(path.removeprefix(f"{API}/clients/"))
            if method == "GET":
                with ctx.inventory() as inventory:
                    return json_response(client_detail_json(
                        ctx.config, inventory, inventory.get(mac), show_secrets=False))
            if method == "DELETE":
                purge = parse_qs(request.query).get("purge", ["false"])[0] == "true"
                with ctx.inventory() as inventory:
                    gone, _ = remove_client(ctx.config, inventory, mac, purge=purge,
                                            backend=open_backend(ctx.config))
                log.info("admin API: removed client %s (%s)%s", gone.mac, gone.hostname,
                         " and its data" if purge else "")
                return json_response(client_json(ctx.config, gone, show_secrets=False))
        elif path in (f"{API}/status", f"{API}/images"):
            if method == "GET":
                with ctx.inventory() as inventory:
                    if path.endswith("status"):
                        return json_response(status_json(inventory, time.time()))
                    return json_response([image_json(i)
                                          for i in list_images(ctx.config, inventory)])
        else:
            return error(HTTPStatus.NOT_FOUND, f"no such route: {path}")
        return error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")

    def _add(self, request: Request) -> Response:
        if len(request.body) > MAX_BODY:
            raise ValidationError(f"the body is over {MAX_BODY} bytes")
        fields = _client_fields(request.body)
        ctx = self.context
        with ctx.inventory() as inventory:
            added = add_client(ctx.config, inventory, backend=open_backend(ctx.config),
                               **fields)  # type: ignore[arg-type]
            log.info("admin API: added client %s (%s)", added.client.mac, added.client.hostname)
            return json_response(client_json(ctx.config, added.client, show_secrets=False),
                                 HTTPStatus.CREATED)
