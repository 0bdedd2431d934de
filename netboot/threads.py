"""Service threads that cannot die quietly: a dead one stops ``netboot serve``.

A service starts its threads with :func:`start_thread`. While a
:class:`Supervisor` is starting services (:meth:`Supervisor.starting`), each
thread started so reports to it: an exception escaping the thread, or the
thread returning before its services are asked to stop, is a death. The death
is logged at ERROR with its traceback, and the supervisor's stop event is set,
so the process that waits on it stops its other services and exits non-zero
(systemd restarts it) instead of serving on without a part. A thread started
outside a supervisor (a service in a test of its own) still logs an escaping
exception.

On the ground floor, not in ``serve/``: :mod:`netboot.serve.compose` imports
every service, so none of them may import ``serve/`` back.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from netboot.errors import NetbootError

log = logging.getLogger(__name__)

RETURNED = "it returned while its service was running"


class Stoppable(Protocol):
    """What :meth:`Supervisor.stop_all` stops; every :class:`~netboot.serve.service.Service` is."""

    name: str

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Death:
    """Which thread of which service died, and of what."""

    service: str
    thread: str
    cause: str

    def __str__(self) -> str:
        return f"{self.service} thread {self.thread} died: {self.cause}"


class Supervisor:
    """Where the threads of one set of services report their death.

    ``stop`` is the event the owner waits on: a death sets it, so one wait
    covers a stop asked for (SIGTERM) and a thread that died. Once it is set,
    threads may return.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.death: Death | None = None  # the first; it is what the owner reports
        self._lock = threading.Lock()

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Threads that :func:`start_thread` starts in this block report to this supervisor."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)

    def died(self, death: Death) -> None:
        with self._lock:
            if self.death is None:
                self.death = death
        self.stop.set()

    def stop_all(self, started: Sequence[Stoppable]) -> None:
        """Stop ``started`` in reverse order; their threads may end from now on."""
        self.stop.set()
        for service in reversed(started):
            try:
                service.stop()
            except Exception:  # one service failing to stop must not keep the others running
                log.exception("%s did not stop cleanly", service.name)


_current: ContextVar[Supervisor | None] = ContextVar("netboot_supervisor", default=None)


def start_thread(service: str, name: str, target: Callable[[], object]) -> threading.Thread:
    """Start daemon thread ``name`` of ``service`` running ``target``, its death reported to
    the supervisor starting it (if any): an exception escaping ``target``, or ``target``
    returning before that supervisor's stop is set."""
    supervisor = _current.get()

    def watched() -> None:
        try:
            target()
        except BaseException as err:  # anything that ends the thread is its death
            cause = str(err) if isinstance(err, NetbootError) else f"{type(err).__name__}: {err}"
            death = Death(service, name, cause)
            log.error("%s", death, exc_info=err)
        else:
            if supervisor is None or supervisor.stop.is_set():
                return
            death = Death(service, name, RETURNED)
            log.error("%s", death)
        if supervisor is not None:
            supervisor.died(death)

    thread = threading.Thread(target=watched, name=name, daemon=True)
    thread.start()
    return thread


def serve_socket(sock: socket.socket, stop: threading.Event, ready: Callable[[], None],
                 interval: float = 0.5) -> None:
    """Call ``ready`` each time ``sock`` has something to read, until ``stop`` is set
    (looked at every ``interval`` seconds): the loop of a one-socket service thread."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while not stop.is_set():
            if selector.select(timeout=interval):
                ready()
