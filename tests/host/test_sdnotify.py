"""sd_notify messages on a real datagram socket, as systemd would receive them."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path

import pytest

from netboot.host.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path):
    """A datagram socket standing in for systemd's notify socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_ready_sends_ready_and_a_status_in_one_datagram(listener, tmp_path):
    Notifier(str(tmp_path / "notify")).ready("serving: dhcp")
    assert listener.recv(4096) == b"READY=1\nSTATUS=serving: dhcp"


def test_stopping_and_ping_send_their_fields(listener, tmp_path):
    notifier = Notifier(str(tmp_path / "notify"))
    notifier.ping()
    notifier.stopping("stopping")
    assert listener.recv(4096) == b"WATCHDOG=1"
    assert listener.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_an_abstract_socket_is_named_with_an_at_sign():
    name = f"netboot-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier("@" + name).ping()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_a_socket_nothing_is_sent_and_nothing_fails():
    Notifier().ready("serving")  # no exception, nowhere to send


def test_a_socket_that_is_gone_is_a_warning_not_an_error(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        Notifier(str(tmp_path / "gone")).ready("serving")
    assert "could not notify systemd" in caplog.text


def test_from_environment_takes_the_variables_out_so_children_do_not_inherit_them():
    environ = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000",
               "WATCHDOG_PID": str(os.getpid()), "PATH": "/usr/bin"}
    notifier = Notifier.from_environment(environ)
    assert notifier == Notifier("/run/systemd/notify", 15.0)  # pings at half the period
    assert environ == {"PATH": "/usr/bin"}


def test_a_watchdog_meant_for_another_process_is_not_pinged():
    environ = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert Notifier.from_environment(environ).watchdog_interval is None


def test_outside_systemd_the_notifier_is_silent():
    assert Notifier.from_environment({}) == Notifier(None, None)
