"""One TFTP read transfer as a state machine: ``step(transfer, event, now) -> (transfer, packets)``.

No sockets and no clocks in here: the server loop feeds events (an ACK, an
ERROR, a malformed packet, a timer tick) with the current time and sends the
packets it gets back. That is what makes the protocol rules testable one by
one: lock-step and windowed sending (RFC 7440), block-number wrap-around, no
answer to a duplicate ACK (the Sorcerer's Apprentice bug, RFC 1123 4.2.3.1),
retransmission after a timeout, and giving up after a bounded number of tries:
``Limits.retries`` once the peer has acknowledged something, and only
``Limits.unanswered_retries`` of the first packet before that. A request can
come from a forged address, and the transfer would then resend its first packet
to a host that never asked; such a transfer is dropped without an ERROR.

One shortcut, for speed and for nothing else: the ACK that acknowledges
everything sent (one per window, nearly every datagram of a transfer) is
recognised by its bytes (:func:`awaited_ack`) and answered by
:func:`advance`, which is what :func:`step` does for that ACK, minus the
parsing and dispatching; the tests check the two agree in every state. Every
other datagram and every timer still goes through :func:`step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from netboot.boot.content import BytesSource, Source
from netboot.tftp.options import Limits, Negotiated
from netboot.tftp.packets import Ack, Error, ErrorCode, data_header, encode_error, encode_oack


def build_datagrams(data: bytes, blksize: int) -> tuple[bytes, ...]:
    """Every DATA datagram of ``data`` at ``blksize``: block n (from 1, not wrapped) at index
    n - 1, the last one short or empty. Built once per cached file and block size and
    shared by all its transfers, so a lock-step block costs a tuple index instead of a
    slice and a copy (see :class:`netboot.tftp.cache.ContentCache`)."""
    view = memoryview(data)
    return tuple(data_header(n + 1) + view[n * blksize:(n + 1) * blksize]
                 for n in range(len(data) // blksize + 1))


class Phase(StrEnum):
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    UNANSWERED = "unanswered"  # the peer acknowledged nothing: dropped without an ERROR


@dataclass(frozen=True, slots=True)
class Start:
    """The request was accepted: send the OACK or the first window."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed; resend or give up if the deadline is behind ``now``."""


@dataclass(frozen=True, slots=True)
class Illegal:
    """The peer sent something no reader of a file may send (a DATA, a request...)."""

    reason: str


Event = Start | Ack | Error | Tick | Illegal


@dataclass(frozen=True, slots=True)
class Plan:
    """What a transfer was agreed to be; it does not change while it runs."""

    source: Source
    blksize: int
    windowsize: int
    timeout: float
    retries: int
    unanswered_retries: int  # resends of the first packet while the peer has said nothing
    oack: bytes | None  # sent as "block 0" when options were negotiated
    last_block: int  # the short (possibly empty) block that ends the file
    view: memoryview | None = None  # the file's bytes, when they are in memory
    datagrams: tuple[bytes, ...] | None = None  # its DATA datagrams, when prebuilt


class Transfer(NamedTuple):
    """Where a read transfer stands; block numbers here are absolute (they do not wrap).

    A NamedTuple rather than a dataclass: a new state per ACK is built in the
    hot path, and building a tuple is several times cheaper than ``replace``.
    """

    plan: Plan
    acked: int  # highest block the client acknowledged (-1: not even the OACK)
    sent: int  # highest block sent
    deadline: float = 0.0
    tries: int = 0  # resends of the current window since the last progress
    phase: Phase = Phase.SENDING
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.phase is not Phase.SENDING

    @property
    def bytes_acked(self) -> int:
        return max(0, min(self.acked * self.plan.blksize, self.plan.source.size))


def new_transfer(source: Source, negotiated: Negotiated, limits: Limits,
                 datagrams: tuple[bytes, ...] | None = None) -> Transfer:
    """A transfer that has not sent anything yet; feed it :class:`Start`. ``datagrams``
    are the file's DATA datagrams at the negotiated block size, if prebuilt."""
    oack = encode_oack(dict(negotiated.oack)) if negotiated.oack else None
    last_block = source.size // negotiated.blksize + 1
    if datagrams is not None and len(datagrams) != last_block:
        raise ValueError(f"{len(datagrams)} datagrams for a file of {last_block} blocks")
    plan = Plan(source=source, blksize=negotiated.blksize, windowsize=negotiated.windowsize,
                timeout=negotiated.timeout, retries=limits.retries,
                unanswered_retries=min(limits.unanswered_retries, limits.retries), oack=oack,
                last_block=last_block,
                view=source.view if isinstance(source, BytesSource) else None,
                datagrams=datagrams)
    start = -1 if oack else 0
    return Transfer(plan, start, start)


_new_state = tuple.__new__  # Transfer(...) without the Python-level __new__ of a NamedTuple
_SENDING = Phase.SENDING


def _window(t: Transfer, now: float, acked: int, tries: int) -> tuple[Transfer, list[bytes]]:
    """Send everything after block ``acked``, up to one window; the state after that.

    This runs once per ACK, so it is written for speed: a cached file's datagrams
    are prebuilt, other files are sliced or read per block, and the state is
    built as a bare tuple.
    """
    plan = t.plan
    if acked < 0:
        return Transfer(plan, acked, 0, now + plan.timeout, tries), [plan.oack]
    last = acked + plan.windowsize
    if last > plan.last_block:
        last = plan.last_block
    if plan.datagrams is not None:
        packets = list(plan.datagrams[acked:last])
    else:
        packets = _read_window(plan, acked, last)
        if packets is None:
            return _fail(t, "the file shrank while it was being sent",
                         ErrorCode.NOT_DEFINED, "file changed on the server")
    sent = t.sent if t.sent > last else last
    state = _new_state(Transfer, (plan, acked, sent, now + plan.timeout, tries, _SENDING, ""))
    return state, packets


def _read_window(plan: Plan, acked: int, last: int) -> list[bytes] | None:
    """DATA datagrams for blocks ``acked + 1`` to ``last``, made from the file; None if it
    has shrunk."""
    source, blksize, view = plan.source, plan.blksize, plan.view
    size = source.size
    packets = []
    offset = acked * blksize
    for block in range(acked + 1, last + 1):
        end = offset + blksize
        if end > size:
            end = size  # the last block: short, or empty when the size is a multiple
        if view is not None:
            payload = view[offset:end]
        else:
            payload = source.read(offset, end - offset)
            if len(payload) != end - offset:
                return None
        packets.append(data_header(block) + payload)
        offset = end
    return packets


def _fail(t: Transfer, reason: str, code: ErrorCode | None = None,
          message: str = "") -> tuple[Transfer, list[bytes]]:
    packets = [encode_error(code, message)] if code is not None else []
    return t._replace(phase=Phase.FAILED, reason=reason), packets


def step(t: Transfer, event: Event, now: float) -> tuple[Transfer, list[bytes]]:
    """Apply one event; return the new state and the datagrams to send to the client."""
    if t.phase is not Phase.SENDING:
        return t, []
    if type(event) is Ack:
        # Map the 16-bit block number into the span this transfer has in flight.
        delta = (event.block - t.acked) & 0xFFFF
        if delta == 0 or delta > t.sent - t.acked:
            return t, []  # a duplicate or stale ACK: never answered (Sorcerer's Apprentice)
        acked = t.acked + delta
        if acked >= t.plan.last_block:
            return t._replace(acked=acked, tries=0, phase=Phase.DONE), []
        return _window(t, now, acked, 0)
    if isinstance(event, Tick):
        if now < t.deadline:
            return t, []
        plan = t.plan
        if t.acked < (0 if plan.oack is not None else 1):  # not even the first packet acked
            if t.tries >= plan.unanswered_retries:
                first = "the OACK" if plan.oack is not None else "block 1"
                return t._replace(phase=Phase.UNANSWERED,
                                  reason=f"no answer after {t.tries + 1} sends of {first}"), []
        elif t.tries >= plan.retries:
            return _fail(t, f"no answer after {t.tries + 1} sends of block {t.acked + 1}",
                         ErrorCode.NOT_DEFINED, "timed out")
        return _window(t, now, t.acked, t.tries + 1)
    if isinstance(event, Start):
        return _window(t, now, t.acked, t.tries)
    if isinstance(event, Error):
        return _fail(t, f"client sent error {event.code}: {event.message or '-'}")
    return _fail(t, event.reason, ErrorCode.ILLEGAL_OPERATION, event.reason)


def awaited_ack(t: Transfer) -> bytes | None:
    """The ACK datagram that acknowledges everything sent, while more remains to be sent.

    It is the common case, one per window: the server compares each datagram
    with these bytes and, when they are equal, calls :func:`advance` instead of
    parsing it into an :class:`Ack` and calling :func:`step`. Anything else
    (a duplicate or old ACK, an ERROR, garbage) and every timer go to
    :func:`step`. None when no datagram qualifies (before the start, after the
    last block was sent, once finished).
    """
    if t.phase is not _SENDING or not t.acked < t.sent < t.plan.last_block:
        return None
    return (0x40000 | t.sent & 0xFFFF).to_bytes(4, "big")  # encode_ack, without the call


def advance(t: Transfer, now: float) -> tuple[Transfer, list[bytes]]:
    """``step(t, Ack(t.sent), now)`` for the datagram :func:`awaited_ack` named, without
    building the event or dispatching on it. In :func:`step` that ACK has
    ``delta == t.sent - t.acked`` and ``acked == t.sent < last_block``, which
    leads to exactly this call; the tests check the two agree state by state.

    Lock-step from memory, the case of nearly every boot file, is :func:`_window`
    unrolled for one block: the block after ``t.sent`` is its prebuilt datagram,
    or else a slice of the view (slicing stops at the end of the file, so the
    last block comes out short or empty); ``t.sent < last_block`` holds
    whenever this is called.
    """
    plan = t.plan
    if plan.windowsize != 1:
        return _window(t, now, t.sent, 0)
    acked = t.sent
    datagrams = plan.datagrams
    if datagrams is not None:
        state = _new_state(Transfer, (plan, acked, acked + 1, now + plan.timeout, 0, _SENDING,
                                      ""))
        return state, [datagrams[acked]]
    view = plan.view
    if view is None:
        return _window(t, now, acked, 0)
    offset = acked * plan.blksize
    header = (0x30000 | (acked + 1) & 0xFFFF).to_bytes(4, "big")  # data_header, inlined
    state = _new_state(Transfer, (plan, acked, acked + 1, now + plan.timeout, 0, _SENDING, ""))
    return state, [header + view[offset:offset + plan.blksize]]
