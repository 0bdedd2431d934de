"""The TFTP read-transfer state machine, event by event, with time passed in."""

from __future__ import annotations

from netboot.boot.content import BytesSource
from netboot.tftp.options import Limits, negotiate
from netboot.tftp.packets import Ack, Error, data_header, encode_oack, parse
from netboot.tftp.transfer import Illegal, Phase, Start, Tick, new_transfer, step

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


def test_the_transfer_is_given_up_after_the_retries():
    t, _ = started(b"a" * 1000, now=0.0)
    for n in range(1, 4):
        t, packets = step(t, Tick(), float(n))
        assert packets
    t, packets = step(t, Tick(), 4.0)
    assert t.phase is Phase.FAILED
    assert parse(packets[0]) == Error(0, "timed out")


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
