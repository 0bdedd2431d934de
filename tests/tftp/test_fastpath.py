"""The fast path (awaited_ack + advance) against step(), state by state, and on the wire.

The server answers the ACK of everything sent by comparing its bytes with
``awaited_ack(t)`` and calling ``advance(t, now)``; every other datagram and
every timer goes to ``step``. The unit tests show ``advance`` is ``step`` for
that ACK in every state a transfer passes through (lock-step and windowed, with
and without an OACK, across the block-number wrap, after a resend, from a file
on disk); the wire tests show each hand-back case on loopback sockets.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from netboot.boot.content import BytesSource, FileSource
from netboot.tftp.options import Limits, negotiate
from netboot.tftp.packets import Ack, Error, encode_ack, encode_error, parse
from netboot.tftp.transfer import (
    Phase,
    Start,
    Tick,
    advance,
    awaited_ack,
    build_datagrams,
    new_transfer,
    step,
)
from tests.support.bootserving import RawClient, Served, sha256, start_served, stop_served

LIMITS = Limits(timeout=1.0, retries=3)


def states(data: bytes, options: dict[str, str], source=None, prebuilt: bool = False):
    """Every state of a transfer driven to its end by the ACKs a client sends, plus resends;
    ``prebuilt``: with the file's datagrams built beforehand, as the cache does."""
    negotiated = negotiate(options, len(data), LIMITS)
    datagrams = build_datagrams(data, negotiated.blksize) if prebuilt else None
    t, _ = step(new_transfer(source or BytesSource(data), negotiated, LIMITS, datagrams),
                Start(), 0.0)
    now = 0.0
    while t.phase is Phase.SENDING:
        yield t
        now += 0.25
        if t.sent % 5 == 0 and t.tries == 0:  # now and then a timeout resends the window
            t, _ = step(t, Tick(), t.deadline)
            yield t
        t, _ = step(t, Ack(t.sent & 0xFFFF), now)


@pytest.mark.parametrize("size, options", [
    (5000, {}),
    (4096, {}),  # a multiple of the block size: it ends with an empty block
    (0, {"tsize": "0"}),  # an empty file after an OACK: ACK 0 sends the empty block
    (5000, {"blksize": "1468", "tsize": "0"}),  # OACK first
    (100, {"blksize": "8", "windowsize": "4"}),
    (99, {"blksize": "8", "windowsize": "16"}),
    (8 * 65540, {"blksize": "8"}),  # past block 65535: numbers wrap to 0
])
def test_advance_equals_step_for_the_awaited_ack_in_every_state(size: int, options):
    data = os.urandom(size)
    checked = 0
    for t in states(data, options):
        awaited = awaited_ack(t)
        if awaited is None:
            continue
        assert parse(awaited) == Ack(t.sent & 0xFFFF)
        now = t.deadline - 0.5
        assert advance(t, now) == step(t, Ack(t.sent & 0xFFFF), now)
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("size, options", [
    (5000, {}),
    (4096, {}),
    (0, {"tsize": "0"}),
    (100, {"blksize": "8", "windowsize": "4"}),
    (8 * 65540, {"blksize": "8"}),
])
def test_prebuilt_datagrams_send_what_slicing_the_file_sends(size: int, options):
    data = os.urandom(size)
    sliced = list(states(data, options))
    prebuilt = list(states(data, options, prebuilt=True))
    assert len(prebuilt) == len(sliced)
    for p, s in zip(prebuilt, sliced, strict=True):
        assert step(p, Ack(p.sent & 0xFFFF), 9.0)[1] == step(s, Ack(s.sent & 0xFFFF), 9.0)[1]
        assert step(p, Tick(), p.deadline)[1] == step(s, Tick(), s.deadline)[1]
        if awaited_ack(p) is not None:
            assert advance(p, 9.0) == step(p, Ack(p.sent & 0xFFFF), 9.0)
            assert advance(p, 9.0)[1] == advance(s, 9.0)[1]


def test_datagrams_for_another_block_count_are_refused():
    negotiated = negotiate({}, 5000, LIMITS)
    with pytest.raises(ValueError, match="datagrams"):
        new_transfer(BytesSource(bytes(5000)), negotiated, LIMITS,
                     build_datagrams(bytes(5000), 1024))


def test_advance_reads_a_file_on_disk_like_its_bytes_in_memory(tmp_path: Path):
    data = os.urandom(10_000)
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        on_disk = list(states(data, {"blksize": "700"}, FileSource(fd, len(data))))
        in_memory = list(states(data, {"blksize": "700"}))
        assert len(on_disk) == len(in_memory)
        for d, m in zip(on_disk, in_memory, strict=True):
            if awaited_ack(m) is not None:
                assert advance(d, 1.0)[1] == advance(m, 1.0)[1]
    finally:
        os.close(fd)


def test_advance_fails_like_step_when_the_file_on_disk_shrank(tmp_path: Path):
    (tmp_path / "f").write_bytes(bytes(3000))
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        t = next(states(bytes(3000), {}, FileSource(fd, 3000)))
        os.truncate(tmp_path / "f", 600)
        failed, packets = advance(t, 1.0)
        assert (failed, packets) == step(t, Ack(1), 1.0)
        assert failed.phase is Phase.FAILED and parse(packets[0]).code == 0
    finally:
        os.close(fd)


def test_no_ack_is_awaited_once_the_last_block_is_out():
    t = list(states(b"x" * 600, {}))[-1]
    assert (t.sent, t.plan.last_block, awaited_ack(t)) == (2, 2, None)


def test_no_ack_is_awaited_before_the_start_or_after_the_end():
    t = new_transfer(BytesSource(b"x"), negotiate({}, 1, LIMITS), LIMITS)
    assert awaited_ack(t) is None
    t, _ = step(t, Start(), 0.0)
    t, _ = step(t, Error(0, "cancelled"), 0.1)
    assert awaited_ack(t) is None


# -- on the wire: each case the fast path hands back to step() ---------------------------


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
    client = RawClient(served.tftp.port)
    try:
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
    finally:
        client.close()


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
    client = RawClient(served.tftp.port)
    try:
        assert sha256(client.download("small")) == sha256((served.root / "small").read_bytes())
    finally:
        client.close()


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
