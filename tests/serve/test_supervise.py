"""``run()`` with services whose threads die, return early, or stop when asked: real threads
started with :func:`netboot.threads.start_thread`."""

from __future__ import annotations

import gc
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from netboot.errors import NetbootError
from netboot.host.sdnotify import Notifier
from netboot.serve.supervise import run
from netboot.threads import start_thread
from tests.support import REPO
from tests.support.waiting import eventually

Body = Callable[[threading.Event], None]


class Part:
    """A service with one thread running ``body`` until ``stop`` sets its event."""

    def __init__(self, name: str, body: Body, stops: list[str]) -> None:
        self.name = name
        self.body = body
        self.stops = stops  # the order services were stopped in, shared by the test's parts
        self.running = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = start_thread(self.name, f"{self.name}-loop", self._run)

    def _run(self) -> None:
        self.running.set()
        self.body(self._stop)

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(5)
        self.stops.append(self.name)


def serves(stop: threading.Event) -> None:
    stop.wait()


def crashes(stop: threading.Event) -> None:
    raise RuntimeError("disk on fire")


def returns(stop: threading.Event) -> None:
    return


def run_in_thread(parts: list[Part], stop: threading.Event,
                  notifier: Notifier | None = None) -> None:
    """``run`` off the main thread, so it leaves pytest's signal handlers alone."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(run, parts, stop, notifier=notifier).result(timeout=20)


@pytest.fixture
def systemd(tmp_path) -> Iterator[tuple[Notifier, socket.socket]]:
    """A notifier pinging every 50 ms and the datagram socket that receives its messages."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield Notifier(str(path), 0.05), sock


def test_a_thread_that_raises_stops_run_with_an_error_naming_it_and_stops_the_others(caplog):
    stops: list[str] = []
    parts = [Part("first", serves, stops), Part("broken", crashes, stops),
             Part("last", serves, stops)]
    with caplog.at_level(logging.INFO), pytest.raises(NetbootError) as failed:
        run_in_thread(parts, threading.Event())
    assert str(failed.value) == \
        "serve stopped: broken thread broken-loop died: RuntimeError: disk on fire"
    assert stops == ["last", "broken", "first"]
    died = [r for r in caplog.records if "broken thread broken-loop died" in r.getMessage()]
    assert died[0].levelno == logging.ERROR and died[0].exc_info is not None


def test_a_thread_that_returns_while_serving_counts_as_dead():
    stops: list[str] = []
    parts = [Part("steady", serves, stops), Part("quitter", returns, stops)]
    with pytest.raises(NetbootError, match="quitter thread quitter-loop died: it returned"):
        run_in_thread(parts, threading.Event())
    assert stops == ["quitter", "steady"]


def test_a_stop_asked_for_ends_run_cleanly(caplog):
    stops: list[str] = []
    parts = [Part("one", serves, stops), Part("two", serves, stops)]
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool, caplog.at_level(logging.INFO):
        running = pool.submit(run, parts, stop)
        for part in parts:
            assert part.running.wait(5)
        stop.set()
        assert running.result(timeout=20) is None
    assert stops == ["two", "one"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_stop_that_hangs_writes_every_threads_stack_and_exits_1(tmp_path):
    """A service whose stop never returns: after the deadline the process ends anyway,
    having said where each thread was."""
    script = tmp_path / "hang.py"
    script.write_text(textwrap.dedent("""
        import threading
        from netboot.serve.supervise import run

        class Stuck:
            name = "stuck"
            def start(self): pass
            def stop(self): threading.Event().wait()  # e.g. a join that never ends

        stop = threading.Event()
        stop.set()
        run([Stuck()], stop, stop_deadline=0.5)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert "Timeout (0:00:00.500000)!" in done.stderr
    assert "in stop" in done.stderr  # the frame it hung in


def test_systemd_hears_ready_once_all_serve_then_pings_then_stopping(systemd):
    notifier, sock = systemd
    stops: list[str] = []
    parts = [Part("one", serves, stops), Part("two", serves, stops)]
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run, parts, stop, notifier=notifier)
        assert sock.recv(4096) == b"READY=1\nSTATUS=serving: one, two"
        assert all(part.running.is_set() for part in parts)
        assert [sock.recv(4096) for _ in range(3)] == [b"WATCHDOG=1"] * 3
        stop.set()
        running.result(timeout=20)
    while (message := sock.recv(4096)) == b"WATCHDOG=1":
        pass  # pings sent before the stop
    assert message == b"STOPPING=1\nSTATUS=stopping"


def test_systemd_hears_why_serve_stops_when_a_thread_dies_and_no_ping_after(systemd):
    notifier, sock = systemd
    stops: list[str] = []
    with pytest.raises(NetbootError):
        run_in_thread([Part("steady", serves, stops), Part("broken", crashes, stops)],
                      threading.Event(), notifier)
    sock.settimeout(0.5)
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096))
    except TimeoutError:
        pass
    assert messages[-1].startswith(b"STOPPING=1\nSTATUS=stopping: broken thread broken-loop died")


def test_what_was_made_before_serving_is_frozen_out_of_the_collectors_sight():
    stops: list[str] = []
    parts = [Part("one", serves, stops)]
    stop = threading.Event()
    gc.unfreeze()
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(run, parts, stop)
            frozen = eventually(lambda: gc.get_freeze_count() > 0, 5)
            stop.set()
            running.result(timeout=20)
    finally:
        gc.unfreeze()
    assert frozen
