"""TFTP on every core: worker processes, each a :class:`TftpServer`, sharing one port.

One Python thread serves a lock-step transfer at the speed of its per-packet
work, and it has one core. With SO_REUSEPORT the kernel spreads requests over
several sockets on the same port, and a BPF program on them
(:func:`netboot.host.sockets.steer_by_source`) picks the socket by the client's
address: each worker process takes a share of the clients, all of one
client's transfers (and its repeated requests) reach the same worker, so
``server.tftp_max_per_source`` holds between the workers, with no hand-off
between them. Workers are started
with ``spawn``: a fresh interpreter, never a fork of a process with threads.
Each opens its own inventory connections; SQLite in WAL mode (as PostgreSQL)
takes readers and the odd stage write from several processes. A worker whose
thread dies exits non-zero; a worker that exits non-zero or is killed ends the parent's
watch thread, which stops ``netboot serve`` (:mod:`netboot.threads`). Exit
status 0 is a worker stopped by a SIGTERM, as systemd sends to every process
of the service when it stops it.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
from functools import partial
from ipaddress import IPv4Address, IPv6Address

from netboot.boot.catalog import Catalog
from netboot.config import Config
from netboot.counters import CounterPublisher, snapshot_dir
from netboot.errors import NetbootError
from netboot.inventory.pool import InventoryPool
from netboot.inventory.recorder import StageRecorder
from netboot.inventory.store import open_inventory
from netboot.log import log_settings, setup_logging
from netboot.tftp.server import TftpServer
from netboot.threads import Supervisor, start_thread

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 8
START_TIMEOUT = 30.0  # seconds for a worker to bind its socket
PARENT_CHECK = 1.0  # seconds between a worker's looks at whether its parent still runs


def worker_count(config: Config) -> int:
    """``server.tftp_workers``, or one per CPU this process may run on (at most 8)."""
    if config.server.tftp_workers:
        return config.server.tftp_workers
    return max(1, min(MAX_AUTO_WORKERS, len(os.sched_getaffinity(0))))


def _worker(config: Config, address: IPv4Address | IPv6Address, port: int, count: int,
            log_format: str, level: int, ready: multiprocessing.Queue) -> None:
    """A worker's life: serve until SIGTERM, until its thread dies or until its parent is gone
    (killed without a chance to stop it: the worker must not hold the port on), then let
    go in reverse order; a death is exit status 1."""
    setup_logging(log_format, level)
    parent = os.getppid()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers itself
    pool = InventoryPool(partial(open_inventory, config))
    stages = StageRecorder(pool)
    server = TftpServer(address, port, Catalog(config, pool), stages,
                        max_per_source=config.server.tftp_max_per_source, workers=count)
    supervisor = Supervisor(stop)
    started = []
    try:
        with supervisor.starting():
            for service in (pool, stages, server, CounterPublisher(
                    snapshot_dir(config.storage.state_dir), [server])):
                service.start()
                started.append(service)
        ready.put(server.port)
        while not stop.wait(PARENT_CHECK):
            if os.getppid() != parent:
                log.warning("TFTP worker %d: its parent %d is gone; stopping", os.getpid(),
                            parent)
                break
    except Exception as err:
        ready.put(f"{type(err).__name__}: {err}")
    finally:
        supervisor.stop_all(started)
    if supervisor.death is not None:
        sys.exit(1)


def _ended(process: multiprocessing.process.BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        return f"it was killed by {signal.Signals(-code).name}"
    return f"it exited with status {code}"


def _wait_ready(process: multiprocessing.process.BaseProcess,
                ready: multiprocessing.Queue) -> int | str:
    """The worker's port, or why it failed (also if it died before it could say)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            return ready.get(timeout=0.2)
        except queue.Empty:
            if not process.is_alive():
                return _ended(process)
    return f"no answer within {START_TIMEOUT:.0f} s"


class TftpWorkers:
    """A :class:`~netboot.serve.service.Service`: ``count`` TFTP worker processes on one port."""

    name = "tftp"

    def __init__(self, config: Config, address: IPv4Address | IPv6Address, port: int,
                 count: int) -> None:
        self.config = config
        self.address = address
        self.port = port
        self.count = count
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._watch: threading.Thread | None = None
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        ready = context.Queue()
        log_format, level = log_settings()
        try:
            for number in range(self.count):
                process = context.Process(
                    target=_worker, name=f"tftp-{number}", daemon=True,
                    args=(self.config, self.address, self.port, self.count, log_format, level,
                          ready))
                process.start()
                self._processes.append(process)
                answer = _wait_ready(process, ready)
                if isinstance(answer, str):
                    raise NetbootError(f"TFTP worker {number} could not start: {answer}")
                self.port = answer  # port 0: the first worker's port, shared by the rest
        except BaseException:
            self.stop()
            raise
        processes = list(self._processes)
        self._watch = start_thread(self.name, "tftp-workers", lambda: self._watch_for(processes))
        log.info("TFTP: %d worker processes on %s:%d", self.count, self.address, self.port)

    def _watch_for(self, processes: list[multiprocessing.process.BaseProcess]) -> None:
        """Return once :meth:`stop` stops the workers or each has stopped on a SIGTERM;
        raise when one exits any other way."""
        running = list(processes)
        while running:
            ended = multiprocessing.connection.wait([p.sentinel for p in running])
            if self._stopping:
                return
            for process in [p for p in running if p.sentinel in ended]:
                process.join()  # its pipe closes as it exits, a moment before it can be reaped
                if process.exitcode != 0:
                    raise NetbootError(f"TFTP worker {process.name} (pid {process.pid}) is "
                                       f"gone: {_ended(process)}")
                log.info("TFTP worker %s (pid %d) stopped on a SIGTERM", process.name,
                         process.pid)
                running.remove(process)

    def stop(self) -> None:
        self._stopping = True
        for process in self._processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker closes its transfers and exits
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                log.warning("TFTP worker %s did not stop; killing it", process.name)
                process.kill()
                process.join()
        self._processes.clear()
        if self._watch is not None:
            self._watch.join()
            self._watch = None
