"""The session table: a transfer's port, and its sessions by address, descriptor and deadline."""

from __future__ import annotations

import select
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from netboot.boot.catalog import Content
from netboot.boot.content import BytesSource
from netboot.tftp.options import Limits, negotiate
from netboot.tftp.packets import Opcode, Request
from netboot.tftp.server import raise_fd_limit
from netboot.tftp.sessions import Session, SessionTable, transfer_sockets
from netboot.tftp.transfer import Start, new_transfer, step
from tests.support.bootserving import Served, start_served, stop_served

LOOPBACK = IPv4Address("127.0.0.1")
LIMITS = Limits(timeout=1.0, retries=3)


@pytest.fixture
def served(make_config):
    running = start_served(make_config())
    yield running
    stop_served(running)


@pytest.fixture
def epoll() -> Iterator[select.epoll]:
    poller = select.epoll()
    yield poller
    poller.close()


def session_for(peer: tuple[str, int], now: float = 0.0) -> Session:
    """A started transfer of a small file to ``peer``, on its own port."""
    source = BytesSource(b"x" * 2000)
    transfer, _ = step(new_transfer(source, negotiate({}, source.size, LIMITS), LIMITS),
                       Start(), now)
    sock, stray = transfer_sockets(LOOPBACK, peer)
    return Session(sock, stray, peer, Request(Opcode.RRQ, "f", "octet", {}),
                   Content("f", source), transfer, now)


def test_transfer_ports_are_held_by_no_other_socket(served: Served):
    """Each transfer gets a port no other socket holds: not the request port, whose
    requests its stray socket would take, and not another transfer's."""
    raise_fd_limit()
    pairs = []
    try:
        for n in range(3000):
            pairs.append(transfer_sockets(IPv4Address("127.0.0.1"), ("127.0.0.1", 9 + n)))
        ports = [sock.getsockname()[1] for sock, _ in pairs]
        assert len(set(ports)) == len(ports)
        assert served.tftp.port not in ports
    finally:
        for pair in pairs:
            for sock in pair:
                sock.close()


def test_a_session_is_found_by_its_address_and_by_each_of_its_descriptors(epoll):
    table = SessionTable()
    session = session_for(("127.0.0.1", 9))
    table.add(session, epoll)
    try:
        assert table.by_peer == {("127.0.0.1", 9): session}
        assert table.by_fd == {session.sock.fileno(): (session, False),
                               session.stray.fileno(): (session, True)}
    finally:
        table.close(session, epoll)


def test_only_sessions_past_their_deadline_are_due(epoll):
    table = SessionTable()
    early, late = session_for(("127.0.0.1", 9)), session_for(("127.0.0.1", 10), now=5.0)
    for session in (early, late):
        table.add(session, epoll)
        table.schedule(session)
    try:
        assert list(table.due(early.transfer.deadline)) == [early]
        assert list(table.due(early.transfer.deadline)) == []  # taken off the heap
        assert [t[2] for t in table.timers] == [late]
    finally:
        for session in (early, late):
            table.close(session, epoll)


def test_a_session_that_moved_on_is_put_back_for_its_new_deadline(epoll):
    table = SessionTable()
    session = session_for(("127.0.0.1", 9))
    table.add(session, epoll)
    table.schedule(session)
    first = session.transfer.deadline
    session.transfer = session.transfer._replace(deadline=first + 3.0)  # an ACK came since
    try:
        assert list(table.due(first)) == []
        assert table.timers[0][0] == first + 3.0
        assert list(table.due(first + 3.0)) == [session]
    finally:
        table.close(session, epoll)


def test_the_table_counts_open_sessions_per_client_address(epoll):
    table = SessionTable()
    sessions = [session_for(peer) for peer in (("127.0.0.1", 9), ("127.0.0.1", 10),
                                               ("127.0.0.2", 9))]
    for session in sessions:
        table.add(session, epoll)
    try:
        assert table.per_source == {"127.0.0.1": 2, "127.0.0.2": 1}
        table.close(sessions[0], epoll)
        table.close(sessions[0], epoll)  # closing twice counts once
        table.close(sessions[2], epoll)
        assert table.per_source == {"127.0.0.1": 1}  # an address with none is forgotten
    finally:
        for session in sessions:
            table.close(session, epoll)
    assert table.per_source == {}


def test_a_closed_session_leaves_the_table_and_is_never_due(epoll):
    table = SessionTable()
    session = session_for(("127.0.0.1", 9))
    table.add(session, epoll)
    table.schedule(session)
    table.close(session, epoll)
    assert (table.by_peer, table.by_fd) == ({}, {})
    assert session.sock.fileno() == -1 and session.stray.fileno() == -1
    assert list(table.due(session.transfer.deadline)) == []
