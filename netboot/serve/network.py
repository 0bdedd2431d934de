"""The network part of ``netboot serve`` as a process of its own, without root.

The parsers that read what strangers send (DHCP, TFTP, HTTP) run as
``server.user`` with only the capabilities their sockets need
(:mod:`netboot.host.users`); the root process keeps the target and the
preparation of boot windows and runs this one. They share nothing but the
inventory (SQLite, shared with ``server.user``'s group, or PostgreSQL), where
the network part opens boot windows and the root part prepares them.

``ps`` tells them apart: ``netboot ... serve`` is root's,
``netboot ... serve --network-part`` the unprivileged one's. The child says it
serves by writing to a pipe; if it ever exits on its own, this service's
thread ends with an error, and serve stops with it.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
import time

from netboot.config import Config
from netboot.errors import NetbootError
from netboot.host.run import end_process
from netboot.host.users import ServiceUser, drop_to
from netboot.log import log_settings
from netboot.threads import start_thread

log = logging.getLogger(__name__)

READY = b"ready\n"
START_TIMEOUT = 60.0  # seconds for the network part to bind every socket
# The network part writes its stacks and exits after NETWORK_STOP_DEADLINE seconds of
# stopping; the root part waits a little longer for that, then kills it, all within
# its own netboot.serve.supervise.STOP_DEADLINE.
NETWORK_STOP_DEADLINE = 8.0
STOP_TIMEOUT = 10.0


def network_part_argv(config: Config, ready_fd: int) -> list[str]:
    """The command of the network part: this interpreter, this package, this config."""
    assert config.source is not None, "the network part reads the config from its file"
    log_format, level = log_settings()
    return [sys.executable, "-m", "netboot", "--config", str(config.source),
            "--log-format", log_format, "--log-level", logging.getLevelName(level).lower(),
            "serve", "--network-part", "--ready-fd", str(ready_fd)]


class NetworkProcess:
    """A :class:`~netboot.serve.service.Service`: starts the network part, watches it."""

    name = "network"

    def __init__(self, config: Config, user: ServiceUser) -> None:
        self.config = config
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        read, write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                drop_to(self.user, network_part_argv(self.config, write)), pass_fds=(write,))
        finally:
            os.close(write)
        try:
            self._wait_ready(read)
        finally:
            os.close(read)
        log.info("network part running as %s (pid %d): DHCP, TFTP and HTTP without root",
                 self.user.name, self.proc.pid)
        self._stopping.clear()
        self._thread = start_thread(self.name, "network-watch", self._watch)

    def _wait_ready(self, read: int) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        got = b""
        while READY not in got:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read], [], [], left)[0]:
                self._end()
                raise NetbootError(f"the network part did not start in {START_TIMEOUT:.0f} s")
            chunk = os.read(read, 64)
            if not chunk:  # it exited: its own log lines say why
                status = self.proc.wait()
                raise NetbootError(f"the network part exited with status {status} "
                                   "before it served")
            got += chunk

    def _watch(self) -> None:
        assert self.proc is not None
        status = self.proc.wait()
        if not self._stopping.is_set():
            raise NetbootError(f"the network part (pid {self.proc.pid}) exited with status "
                               f"{status}")

    def stop(self) -> None:
        self._stopping.set()
        self._end()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _end(self) -> None:
        end_process(self.proc, STOP_TIMEOUT, "the network part")
