"""The admin interface's HTTP server on loopback, with real sockets (port 0)."""

import socket

import pytest

from netboot.admin.service import AdminService
from netboot.inventory.store import open_inventory


@pytest.fixture
def admin(make_config):
    config = make_config("target:\n  manage: false\nadmin:\n  port: 0\n")
    with open_inventory(config):
        pass  # the state dir and the inventory exist, as serve leaves them before this starts
    service = AdminService(config, lambda: open_inventory(config))
    service.start()
    try:
        yield service
    finally:
        service.stop()


def exchange(port: int, request: bytes) -> bytes:
    """Everything the server sends until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def test_the_api_answers_over_http(admin):
    reply = exchange(admin.port, b"GET /api/v1/clients HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"[]\n")


def test_a_malformed_content_length_is_400_and_serving_goes_on(admin):
    reply = exchange(admin.port, b"POST /api/v1/clients HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: lots\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ") and b"lots" in reply
    assert exchange(admin.port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")


def test_an_oversized_body_is_refused_unread(admin):
    reply = exchange(admin.port, b"POST /api/v1/clients HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: 99999999\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413 ")
