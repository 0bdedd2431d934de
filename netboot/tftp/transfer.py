"""One TFTP read transfer as a state machine: ``step(transfer, event, now) -> (transfer, packets)``.

No sockets and no clocks in here: the server loop feeds events (an ACK, an
ERROR, a malformed packet, a timer tick) with the current time and sends the
packets it gets back. That is what makes the protocol rules testable one by
one: lock-step and windowed sending (RFC 7440), block-number wrap-around, no
answer to a duplicate ACK (the Sorcerer's Apprentice bug, RFC 1123 4.2.3.1),
retransmission after a timeout, and giving up after a bounded number of tries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from netboot.tftp.options import Limits, Negotiated
from netboot.tftp.packets import Ack, Error, ErrorCode, data_header, encode_error, encode_oack


class Source(Protocol):
    """The bytes of one file: its size and a positional read."""

    size: int

    def read(self, offset: int, length: int) -> bytes: ...


@dataclass(frozen=True)
class BytesSource:
    """A file rendered in memory (a client's script, config or initrd part)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]


@dataclass(frozen=True)
class FileSource:
    """An open file, read with pread so a transfer never shares a file position."""

    fd: int
    size: int

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)


class Phase(StrEnum):
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"


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
    oack: bytes | None  # sent as "block 0" when options were negotiated
    last_block: int  # the short (possibly empty) block that ends the file


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


def new_transfer(source: Source, negotiated: Negotiated, limits: Limits) -> Transfer:
    """A transfer that has not sent anything yet; feed it :class:`Start`."""
    oack = encode_oack(dict(negotiated.oack)) if negotiated.oack else None
    plan = Plan(source=source, blksize=negotiated.blksize, windowsize=negotiated.windowsize,
                timeout=negotiated.timeout, retries=limits.retries, oack=oack,
                last_block=source.size // negotiated.blksize + 1)
    start = -1 if oack else 0
    return Transfer(plan, start, start)


def _window(t: Transfer, now: float, acked: int, tries: int) -> tuple[Transfer, list[bytes]]:
    """Send everything after block ``acked``, up to one window; the state after that."""
    plan = t.plan
    if acked < 0:
        return Transfer(plan, acked, 0, now + plan.timeout, tries), [plan.oack]
    last = min(acked + plan.windowsize, plan.last_block)
    size, blksize, read = plan.source.size, plan.blksize, plan.source.read
    packets = []
    for block in range(acked + 1, last + 1):
        offset = (block - 1) * blksize
        want = min(blksize, size - offset)
        payload = read(offset, want) if want > 0 else b""
        if len(payload) != want:
            return _fail(t, "the file shrank while it was being sent",
                         ErrorCode.NOT_DEFINED, "file changed on the server")
        packets.append(data_header(block) + payload)
    return Transfer(plan, acked, max(t.sent, last), now + plan.timeout, tries), packets


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
        if t.tries >= t.plan.retries:
            return _fail(t, f"no answer after {t.tries + 1} sends of block {t.acked + 1}",
                         ErrorCode.NOT_DEFINED, "timed out")
        return _window(t, now, t.acked, t.tries + 1)
    if isinstance(event, Start):
        return _window(t, now, t.acked, t.tries)
    if isinstance(event, Error):
        return _fail(t, f"client sent error {event.code}: {event.message or '-'}")
    return _fail(t, event.reason, ErrorCode.ILLEGAL_OPERATION, event.reason)
