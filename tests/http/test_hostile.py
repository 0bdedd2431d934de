"""netboot's HTTP server against hostile peers, over real TCP on loopback.

Each test holds connections open from chosen 127.x addresses with raw
sockets, or sends exactly the bytes a hostile client would, and reads what
comes back: the thread bound, the per-address limit, the request deadline,
absurd Range and header sizes, and the refusal counters logged at stop.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from netboot.http.server import KEEPALIVE_IDLE, RETRY_AFTER, Refusal
from tests.support.bootserving import Served, start_served, stop_served

FILE = "/undionly.kpxe"
FILE_SIZE = 70_000
GET = f"GET {FILE} HTTP/1.1\r\nHost: netboot\r\n\r\n".encode()


@pytest.fixture
def serve(make_config) -> Iterator[Callable[..., Served]]:
    """Start the boot file servers with ``server.http_*`` keys given as keywords."""
    running: list[Served] = []

    def start(**server_keys: int) -> Served:
        config = make_config()
        served = start_served(replace(config, server=replace(config.server, **server_keys)))
        (served.root / FILE[1:]).write_bytes(b"x" * FILE_SIZE)
        running.append(served)
        return served

    yield start
    for served in running:
        stop_served(served)


def connect(served: Served, source: str, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.http.port), timeout=timeout,
                                    source_address=(source, 0))


def reply(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


def exchange(served: Served, request: bytes, source: str = "127.0.0.1") -> bytes:
    """Send ``request`` on a connection that asks to be closed after it; return the reply."""
    with connect(served, source) as sock:
        sock.sendall(request)
        return reply(sock)


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def get(path: str = FILE, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: netboot", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


def warnings_or_worse(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What a request logged at WARNING or above, a traceback included (the servers' start-up
    lines are INFO, and show up when an earlier test left the netboot logger at INFO)."""
    return [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.02)


def hold(served: Served, sources: list[str]) -> list[socket.socket]:
    """Connections that send nothing, each once the server has taken it to a thread."""
    held = []
    for count, source in enumerate(sources, 1):
        held.append(connect(served, source))
        wait_for(lambda count=count: served.http.stats.connections >= count)
    return held


# -- the thread pool ---------------------------------------------------------------------

def test_a_connection_past_the_thread_bound_waits_until_a_thread_is_free(serve):
    served = serve(http_threads=2)
    held = hold(served, ["127.0.0.10", "127.0.0.11"])
    with connect(served, "127.0.0.12", timeout=1.0) as waiting:
        waiting.sendall(GET)
        with pytest.raises(TimeoutError):
            waiting.recv(1)
        held[0].close()
        waiting.settimeout(5.0)
        assert waiting.recv(12) == b"HTTP/1.1 200"
    held[1].close()


def test_the_server_starts_no_thread_per_connection(serve):
    served = serve(http_threads=3)
    before = threading.active_count()
    held = [connect(served, f"127.0.0.{20 + n}") for n in range(12)]
    wait_for(lambda: served.http.stats.connections == 3)
    time.sleep(0.2)  # time for any thread the server would start per connection
    assert threading.active_count() == before
    for sock in held:
        sock.close()


def test_keep_alive_serves_several_requests_on_one_connection(serve):
    served = serve(http_threads=1)
    conn = http.client.HTTPConnection("127.0.0.1", served.http.port, timeout=5)
    bodies = []
    for _ in range(3):
        conn.request("GET", FILE)
        bodies.append(conn.getresponse().read())
    conn.close()
    assert bodies == [b"x" * FILE_SIZE] * 3 and served.http.stats.connections == 1


# -- the per-address limit ----------------------------------------------------------------

def test_a_connection_past_the_per_address_limit_gets_503_with_retry_after(serve):
    served = serve(http_max_per_source=2)
    held = hold(served, ["127.0.0.30"] * 2)
    with connect(served, "127.0.0.30") as refused:
        response = reply(refused)
    assert status(response) == 503 and f"Retry-After: {RETRY_AFTER}\r\n".encode() in response
    assert served.http.stats.refused == {Refusal.PER_SOURCE: 1}
    for sock in held:
        sock.close()


def test_a_refused_client_that_sent_its_request_reads_the_503(serve):
    served = serve(http_max_per_source=1)
    held = hold(served, ["127.0.0.31"])
    assert status(exchange(served, get(), source="127.0.0.31")) == 503
    held[0].close()


def test_another_address_is_served_while_one_is_at_its_limit(serve):
    served = serve(http_max_per_source=2)
    held = hold(served, ["127.0.0.32"] * 2)
    assert status(exchange(served, get(), source="127.0.0.33")) == 200
    for sock in held:
        sock.close()


def test_an_address_is_served_again_once_its_connections_close(serve):
    served = serve(http_max_per_source=1)
    held = hold(served, ["127.0.0.34"])
    held[0].close()
    wait_for(lambda: status(exchange(served, get(), source="127.0.0.34")) == 200)


# -- the request deadline -----------------------------------------------------------------

def trickle(sock: socket.socket, head: bytes, interval: float, seconds: float) -> float:
    """Send ``head``, then a byte every ``interval`` until the server hangs up; how long that
    took. Fails if the server has not hung up within ``seconds``."""
    began = time.monotonic()
    sock.sendall(head)
    sock.settimeout(interval)
    while time.monotonic() - began < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - began
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - began
        try:
            sock.send(b"a")
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - began
    raise AssertionError(f"still connected after {seconds} s")


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_deadline(serve):
    served = serve(http_request_timeout=2)
    with connect(served, "127.0.0.40") as slow:
        took = trickle(slow, b"GET / HTTP/1.1\r\nX-Slow: ", interval=0.2, seconds=10)
    assert 1.5 < took < 4
    assert served.http.stats.refused == {Refusal.DEADLINE: 1}


def test_an_idle_connection_is_closed_at_the_deadline(serve):
    served = serve(http_request_timeout=1)
    with connect(served, "127.0.0.41") as idle:
        began = time.monotonic()
        assert reply(idle) == b""
    assert time.monotonic() - began < 3


def test_a_kept_alive_connection_idle_after_a_request_is_closed_without_a_refusal(serve):
    served = serve(http_request_timeout=30)
    with connect(served, "127.0.0.45", timeout=KEEPALIVE_IDLE + 5) as kept:
        kept.sendall(GET)
        began = time.monotonic()
        response = reply(kept)
    assert status(response) == 200 and response.endswith(b"x" * FILE_SIZE)
    assert KEEPALIVE_IDLE - 1 < time.monotonic() - began < KEEPALIVE_IDLE + 2
    assert served.http.stats.refused == {}


def test_a_body_that_never_ends_frees_the_thread_at_the_deadline(serve):
    served = serve(http_request_timeout=2)
    head = f"GET {FILE} HTTP/1.1\r\nHost: netboot\r\nContent-Length: 1000000\r\n\r\n".encode()
    with connect(served, "127.0.0.42") as slow:
        assert trickle(slow, head, interval=0.2, seconds=10) < 6


def test_a_slow_client_does_not_hold_up_another(serve):
    served = serve(http_threads=1, http_request_timeout=1)
    with connect(served, "127.0.0.43") as slow:
        slow.sendall(b"GET / HTTP/1.1\r\n")
        wait_for(lambda: served.http.stats.connections == 1)
        assert status(exchange(served, get(), source="127.0.0.44")) == 200


# -- absurd Range and header sizes --------------------------------------------------------

MANY_RANGES = "bytes=" + ",".join(f"{n}-{n}" for n in range(5000))


@pytest.mark.parametrize(("range_header", "expected"), [
    ("bytes=0-99999999999999999999999999999", 206),
    ("bytes=0-" + "9" * 5000, 206),
    ("bytes=-" + "9" * 5000, 206),
    ("bytes=" + "9" * 5000 + "-", 416),
    ("bytes=00000000000000000000000000001-2", 206),
    (MANY_RANGES, 200),
    ("bytes=" + "0" * 60_000 + "-", 206),
], ids=["29-digits", "5000-digit-end", "5000-digit-suffix", "5000-digit-start",
        "leading-zeros", "5000-ranges", "60kB-of-zeros"])
def test_an_absurd_range_is_ignored_or_416(serve, caplog, range_header, expected):
    served = serve()
    with caplog.at_level(logging.WARNING):
        assert status(exchange(served, get(FILE, f"Range: {range_header}"))) == expected
    assert not warnings_or_worse(caplog)


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (get(FILE, "Range: bytes=" + "1" * 100_000 + "-"), 431),
    (get(FILE, "X-Big: " + "a" * 70_000), 431),
    (get(FILE, *(f"X-{n}: {n}" for n in range(101))), 431),
    (get("/" + "a" * 70_000), 414),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
], ids=["100kB-range", "70kB-header", "101-headers", "70kB-request-line", "garbage",
        "http-9.9"])
def test_an_oversized_or_malformed_request_gets_its_4xx(serve, caplog, request_bytes, expected):
    served = serve()
    with caplog.at_level(logging.WARNING):
        assert status(exchange(served, request_bytes)) == expected
    assert not warnings_or_worse(caplog)


# -- counters -----------------------------------------------------------------------------

def test_refusals_are_counted_by_reason_and_logged_at_stop(make_config, caplog):
    config = make_config()
    served = start_served(replace(config, server=replace(config.server, http_max_per_source=1)))
    try:
        held = hold(served, ["127.0.0.50"])
        exchange(served, b"", source="127.0.0.50")
        exchange(served, get(FILE, "X-Big: " + "a" * 70_000), source="127.0.0.51")
        held[0].close()
    finally:
        with caplog.at_level(logging.INFO, logger="netboot.http"):
            stop_served(served)
    assert ("HTTP stopped: connections 2, refused: oversized request 1, per-source limit 1"
            in caplog.text)


def test_stop_cuts_held_connections_instead_of_waiting_for_them(make_config):
    served = start_served(make_config())
    held = hold(served, ["127.0.0.60", "127.0.0.61"])
    began = time.monotonic()
    stop_served(served)
    assert time.monotonic() - began < 2
    assert [reply(sock) for sock in held] == [b"", b""]
