"""The TFTP read-transfer state machine, event by event, with time passed in.

The shortcut for the ACK of everything sent (``awaited_ack`` + ``advance``) is checked
against ``step`` for that ACK in every state a transfer passes through: lock-step and
windowed, with and without an OACK, across the block-number wrap, after a resend, from
a file on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netboot.boot.content import BytesSource, FileSource
from netboot.tftp.options import Limits, negotiate
from netboot.tftp.packets import Ack, Error, data_header, encode_oack, parse
from netboot.tftp.transfer import (
    Illegal,
    Phase,
    Start,
    Tick,
    advance,
    awaited_ack,
    build_datagrams,
    new_transfer,
    step,
)

LIMITS = Limits(timeout=1.0, retries=3)


def started(data: bytes, options: dict[str, str] | None = None, now: float = 0.0):
    t = new_transfer(BytesSource(data), negotiate(options or {}, len(data), LIMITS), LIMITS)
    return step(t, Start(), now)


def test_without_options_the_first_block_is_sent_at_once():
    _, packets = started(b"x" * 600)
    assert packets == [data_header(1) + b"x" * 512]


def test_with_options_the_oack_comes_first_and_ack_0_starts_data():
    t, packets = started(b"abc", {"blksize": "8", "tsize": "0"})
    assert packets == [encode_oack({"blksize": "8", "tsize": "3"})]
    _, packets = step(t, Ack(0), 0.1)
    assert packets == [data_header(1) + b"abc"]


def test_a_file_of_whole_blocks_ends_with_an_empty_block():
    t, _ = started(b"y" * 512)
    t, packets = step(t, Ack(1), 0.1)
    assert packets == [data_header(2)]
    t, packets = step(t, Ack(2), 0.2)
    assert (t.phase, packets, t.bytes_acked) == (Phase.DONE, [], 512)


def test_a_duplicate_ack_is_not_answered():
    t, _ = started(b"z" * 2000)
    t, _ = step(t, Ack(1), 0.1)
    assert step(t, Ack(1), 0.2) == (t, [])


def test_block_numbers_wrap_after_65535():
    data = bytes(8 * 65540)
    t, _ = started(data, {"blksize": "8"})
    for block in range(65535):
        t, _ = step(t, Ack(block), 0.0)
    t, packets = step(t, Ack(65535), 0.0)
    assert packets == [b"\x00\x03\x00\x00" + bytes(8)]  # block 65536 goes out as 0
    t, packets = step(t, Ack(0), 0.0)
    assert (t.acked, packets[0][:4]) == (65536, b"\x00\x03\x00\x01")


def test_windowsize_sends_that_many_blocks_per_ack():
    t, _ = started(bytes(100), {"blksize": "8", "windowsize": "4"})
    _, packets = step(t, Ack(0), 0.0)
    assert [p[:4] for p in packets] == [data_header(n) for n in (1, 2, 3, 4)]


def test_a_partial_window_ack_resends_from_the_first_missing_block():
    t, _ = started(bytes(100), {"blksize": "8", "windowsize": "4"})
    t, _ = step(t, Ack(0), 0.0)
    _, packets = step(t, Ack(2), 0.1)
    assert [p[:4] for p in packets] == [data_header(n) for n in (3, 4, 5, 6)]


def test_nothing_is_resent_before_the_deadline():
    t, _ = started(b"a" * 1000, now=10.0)
    assert step(t, Tick(), 10.9) == (t, [])


def test_the_window_is_resent_after_the_timeout():
    t, first = started(b"a" * 1000, now=10.0)
    t, packets = step(t, Tick(), 11.0)
    assert (packets, t.tries, t.deadline) == (first, 1, 12.0)


def test_the_negotiated_timeout_sets_the_resend_interval():
    t, _ = started(b"a", {"timeout": "5"}, now=0.0)
    assert step(t, Tick(), 4.9)[1] == []
    assert len(step(t, Tick(), 5.0)[1]) == 1


def resends_until_the_end(t):
    """Tick at each deadline until the transfer ends: (its end state, datagrams per tick)."""
    sent = []
    while t.phase is Phase.SENDING:
        t, packets = step(t, Tick(), t.deadline)
        sent.append(packets)
    return t, sent


def test_a_transfer_the_peer_acknowledged_is_given_up_after_the_retries():
    t, _ = started(b"a" * 1000, now=0.0)
    t, _ = step(t, Ack(1), 0.5)
    t, sent = resends_until_the_end(t)
    assert [len(p) for p in sent] == [1, 1, 1, 1]  # three resends (LIMITS.retries), an error
    assert t.phase is Phase.FAILED
    assert parse(sent[-1][0]) == Error(0, "timed out")


def test_a_silent_peer_gets_block_1_only_twice_more_and_is_dropped_without_an_error():
    t, first = started(b"a" * 1000, now=0.0)
    t, sent = resends_until_the_end(t)
    assert sent == [first, first, []]
    assert (t.phase, t.reason) == (Phase.UNANSWERED, "no answer after 3 sends of block 1")


def test_a_silent_peer_gets_the_oack_only_twice_more_and_is_dropped_without_an_error():
    t, first = started(b"a" * 1000, {"tsize": "0"}, now=0.0)
    t, sent = resends_until_the_end(t)
    assert sent == [first, first, []]
    assert (t.phase, t.reason) == (Phase.UNANSWERED, "no answer after 3 sends of the OACK")


def test_a_peer_that_acknowledged_the_oack_gets_the_full_retries_for_block_1():
    t, _ = started(b"a" * 1000, {"tsize": "0"}, now=0.0)
    t, _ = step(t, Ack(0), 0.5)
    t, sent = resends_until_the_end(t)
    assert [p[0][:4] for p in sent[:-1]] == [data_header(1)] * 3
    assert t.phase is Phase.FAILED


def test_the_unanswered_resends_never_exceed_the_retries():
    limits = Limits(timeout=1.0, retries=1, unanswered_retries=2)
    t = new_transfer(BytesSource(b"a"), negotiate({}, 1, limits), limits)
    t, first = step(t, Start(), 0.0)
    t, sent = resends_until_the_end(t)
    assert sent == [first, []]
    assert t.phase is Phase.UNANSWERED


def test_a_duplicate_ack_before_any_progress_does_not_count_as_an_answer():
    t, first = started(b"a" * 1000, now=0.0)
    t, _ = step(t, Ack(0), 0.5)  # no OACK was sent: ACK 0 acknowledges nothing
    t, sent = resends_until_the_end(t)
    assert (sent, t.phase) == ([first, first, []], Phase.UNANSWERED)


def test_progress_resets_the_retry_count():
    t, _ = started(b"a" * 1000, now=0.0)
    t, _ = step(t, Tick(), 1.0)
    t, _ = step(t, Ack(1), 1.5)
    assert t.tries == 0


def test_an_error_from_the_client_ends_the_transfer_silently():
    t, _ = started(b"a" * 1000)
    t, packets = step(t, Error(0, "cancelled"), 0.1)
    assert (t.phase, packets) == (Phase.FAILED, [])
    assert "cancelled" in t.reason


def test_an_illegal_packet_ends_the_transfer_with_error_4():
    t, _ = started(b"a" * 1000)
    t, packets = step(t, Illegal("DATA from a reader"), 0.1)
    assert t.phase is Phase.FAILED
    assert parse(packets[0]) == Error(4, "DATA from a reader")


def test_a_finished_transfer_ignores_further_events():
    t, _ = started(b"")
    t, _ = step(t, Ack(1), 0.0)
    assert t.phase is Phase.DONE
    assert step(t, Tick(), 100.0) == (t, [])


# -- the shortcut: advance() is step() for the awaited ACK ------------------------------


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
