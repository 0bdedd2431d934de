"""The fast path on the wire: the awaited ACK answered at once, each case it hands back to
``step()``, and the busy-poll for a lone transfer.

The server compares each datagram of a transfer with the ACK it awaits and, when they
are equal, sends the next block from ``advance()``; that ``advance()`` is ``step()`` for
that ACK in every state is tested with the state machine (test_transfer.py). Here, on
loopback sockets: the whole file arrives through the shortcut, and a duplicate or old
ACK, an ERROR, a stall, a wrong transfer ID and a shrinking file each take the other way.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from netboot.tftp.fastpath import SPIN_MISSES
from netboot.tftp.options import Limits
from netboot.tftp.packets import Error, encode_ack, encode_error, parse
from tests.support.bootserving import RawClient, Served, sha256, start_served, stop_served

TIMEOUT = 2.0


@pytest.fixture
def served(make_config):
    running = start_served(make_config(), limits=Limits(timeout=TIMEOUT, retries=2))
    (running.root / "small").write_bytes(os.urandom(20 * 512 + 100))
    yield running
    stop_served(running)


# Seconds to listen for a packet that must not come: well under the resend timeout, so
# a test stalled by a busy machine does not mistake a resend for an answer.
QUIET = 0.4


def nothing_arrives(client: RawClient, seconds: float = QUIET) -> bool:
    client.sock.settimeout(seconds)
    try:
        client.receive()
    except TimeoutError:
        return True
    finally:
        client.sock.settimeout(5)
    return False


def started(served: Served, blocks: int) -> RawClient:
    """A lock-step transfer of 'small' that has gone through ``blocks`` fast-path ACKs."""
    client = RawClient(served.tftp.port)
    assert client.request("small")[:4] == b"\x00\x03\x00\x01"
    for block in range(1, blocks + 1):
        client.ack(block)
        assert client.receive()[:4] == b"\x00\x03" + (block + 1).to_bytes(2, "big")
    return client


def test_a_cached_file_is_sent_from_its_shared_prebuilt_datagrams(served: Served):
    client = started(served, 1)
    try:
        (session,) = served.tftp.sessions.values()
        plan = session.transfer.plan
        assert plan.datagrams is not None
        assert plan.datagrams is served.tftp.cache.datagrams(plan.source, plan.blksize)
    finally:
        client.close()


def test_a_duplicate_ack_gets_no_resend(served: Served):
    client = started(served, 3)  # block 4 is out
    try:
        client.ack(3)  # the Sorcerer's Apprentice: answering this would double every block
        assert nothing_arrives(client)
        client.ack(4)
        assert client.receive()[:4] == b"\x00\x03\x00\x05"
        assert nothing_arrives(client)  # exactly one block 5
    finally:
        client.close()


def test_an_ack_for_an_old_block_is_ignored_and_the_transfer_goes_on(served: Served):
    client = started(served, 5)  # block 6 is out
    try:
        client.ack(2)
        assert nothing_arrives(client)
        client.ack(6)
        assert client.receive()[:4] == b"\x00\x03\x00\x07"
    finally:
        client.close()


def test_an_error_from_the_client_mid_transfer_ends_it(served: Served):
    client = started(served, 4)
    try:
        client.sock.sendto(encode_error(0, "user cancelled"), client.peer)
        deadline = time.monotonic() + 2
        while served.tftp.sessions and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not served.tftp.sessions
        assert served.tftp.stats["failed"] == 1
        assert nothing_arrives(client, TIMEOUT + 0.2)  # no resend, no error answering an error
    finally:
        client.close()


def test_a_client_that_stalls_mid_transfer_gets_the_block_again_after_the_timeout(
        served: Served):
    with RawClient(served.tftp.port) as client:
        client.request("small")
        for block in range(1, 5):
            client.ack(block)
            last = client.receive()
        began = time.monotonic()
        again = client.receive()
        assert again == last  # block 5, the same bytes
        assert time.monotonic() - began >= TIMEOUT - 0.1
        client.ack(5)
        assert client.receive()[:4] == b"\x00\x03\x00\x06"  # and the fast path resumes


def test_a_wrong_tid_mid_transfer_gets_error_5_and_does_not_advance_it(served: Served):
    client = started(served, 3)  # block 4 is out, its ACK awaited
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.settimeout(5)
    try:
        stranger.sendto(encode_ack(4), client.peer)  # the awaited ACK, from another port
        error = parse(stranger.recv(1000))
        assert isinstance(error, Error) and error.code == 5
        assert nothing_arrives(client)  # block 5 was not sent
        client.ack(4)
        assert client.receive()[:4] == b"\x00\x03\x00\x05"
    finally:
        client.close()
        stranger.close()
    assert served.tftp.stats["wrong_tid"] == 1


def test_the_whole_file_arrives_intact_through_the_fast_path(served: Served):
    with RawClient(served.tftp.port) as client:
        assert sha256(client.download("small")) == sha256((served.root / "small").read_bytes())


def test_a_file_on_disk_that_shrinks_mid_transfer_ends_it_with_an_error(served: Served):
    served.tftp.cache.budget = 0  # nothing in memory: blocks are read from disk as they go
    client = started(served, 2)
    try:
        os.truncate(served.root / "small", 1000)
        client.ack(3)
        error = parse(client.receive())
        assert isinstance(error, Error) and error.message == "file changed on the server"
    finally:
        client.close()
    deadline = time.monotonic() + TIMEOUT / 2  # at once, not when the timer next looks
    while served.tftp.sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (served.tftp.stats["failed"], served.tftp.sessions) == (1, {})


def test_lone_transfer_stops_spinning_for_a_client_that_answers_slowly(served: Served):
    """Busy-polling for a slow client's ACK only burns CPU: after SPIN_MISSES misses the
    transfer waits in epoll like any other, and still completes."""
    with RawClient(served.tftp.port) as client:
        data = client.request("small")  # 21 blocks of 512, lock-step
        blocks = [data]
        while len(blocks[-1]) == 516:
            time.sleep(0.005)  # far beyond the spin window
            client.ack(len(blocks))
            blocks.append(client.receive())
        client.ack(len(blocks))
    assert b"".join(b[4:] for b in blocks) == (served.root / "small").read_bytes()
    assert served.tftp.stats["spin_misses"] == SPIN_MISSES
