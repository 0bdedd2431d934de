"""Option negotiation for a read request: blksize, tsize, timeout, windowsize.

RFC 2347 (the OACK), 2348 (blksize 8..65464), 2349 (timeout 1..255 s, tsize)
and 7440 (windowsize 1..65535). Unknown options are left out of the OACK, as
RFC 2347 allows; a known option with a value outside its RFC range is refused
with error 8 and a message naming it. Three values are lowered instead: a
blksize above what this server sends (RFC 2348 lets the server answer with a
smaller one, which is how a request for 65536 gets a working transfer), a
windowsize above our cap (RFC 7440 lets the server choose a smaller window),
and a timeout above ``Limits.max_timeout``. RFC 2349 lets the server only echo
the client's timeout or leave the option out, so a timeout above the cap is
left out of the OACK and the server resends every ``max_timeout`` seconds: a
session a silent peer holds lasts (retries + 1) x timeout, and 255 s would let
a few forged requests hold sessions for many minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Option:
    """Option names as they appear on the wire (lower-cased by the parser)."""

    BLKSIZE = "blksize"  # RFC 2348
    TSIZE = "tsize"  # RFC 2349
    TIMEOUT = "timeout"  # RFC 2349
    WINDOWSIZE = "windowsize"  # RFC 7440


MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464  # RFC 2348 section "Blocksize Option Specification"
DEFAULT_BLKSIZE = 512  # RFC 1350
MIN_TIMEOUT, MAX_TIMEOUT = 1, 255  # RFC 2349
MIN_WINDOWSIZE, MAX_WINDOWSIZE = 1, 65535  # RFC 7440

_DIGITS = re.compile(r"[0-9]{1,10}")


class OptionError(ValueError):
    """A requested option value this server refuses (sent to the client as error 8)."""


@dataclass(frozen=True)
class Limits:
    """What this server allows; the defaults are what a PXE ROM and curl need."""

    max_blksize: int = MAX_BLKSIZE
    max_windowsize: int = 64  # a 64-block burst is already line rate; larger only adds loss
    timeout: float = 1.0  # seconds before a DATA block is sent again, if the client sets none
    max_timeout: int = 5  # a client's timeout option above this is not acknowledged; we use this
    retries: int = 5  # resends of the same block before the transfer is given up
    # Resends of the first packet (the OACK or block 1) while the peer has answered
    # nothing: a forged source never will, and its victim gets no more than these.
    unanswered_retries: int = 2


@dataclass(frozen=True)
class Negotiated:
    """The parameters of one transfer and the OACK options (empty: no OACK, start with DATA)."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float = 1.0
    oack: tuple[tuple[str, str], ...] = ()


def _number(name: str, value: str, low: int, high: int | None) -> int:
    if not _DIGITS.fullmatch(value):
        raise OptionError(f"{name} {value!r} is not a number")
    number = int(value)
    if number < low or (high is not None and number > high):
        span = f"{low}-{high}" if high is not None else f"at least {low}"
        raise OptionError(f"{name} {number} is outside {span}")
    return number


DEFAULT_LIMITS = Limits()


def negotiate(requested: dict[str, str], size: int,
              limits: Limits = DEFAULT_LIMITS) -> Negotiated:
    """Accept, lower or refuse each requested option for a file of ``size`` bytes."""
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, limits.timeout
    oack: list[tuple[str, str]] = []
    if Option.BLKSIZE in requested:
        # Above 65464 is lowered, not refused: see the module docstring.
        blksize = min(_number(Option.BLKSIZE, requested[Option.BLKSIZE], MIN_BLKSIZE, None),
                      limits.max_blksize, MAX_BLKSIZE)
        oack.append((Option.BLKSIZE, str(blksize)))
    if Option.TSIZE in requested:
        _number(Option.TSIZE, requested[Option.TSIZE], 0, None)  # a client sends 0 in a RRQ
        oack.append((Option.TSIZE, str(size)))
    if Option.TIMEOUT in requested:
        asked_timeout = _number(Option.TIMEOUT, requested[Option.TIMEOUT], MIN_TIMEOUT,
                                MAX_TIMEOUT)
        timeout = min(asked_timeout, limits.max_timeout)
        if asked_timeout == timeout:  # RFC 2349: echoed as asked, or not acknowledged at all
            oack.append((Option.TIMEOUT, str(timeout)))
    if Option.WINDOWSIZE in requested:
        asked = _number(Option.WINDOWSIZE, requested[Option.WINDOWSIZE], MIN_WINDOWSIZE,
                        MAX_WINDOWSIZE)
        windowsize = min(asked, limits.max_windowsize)
        oack.append((Option.WINDOWSIZE, str(windowsize)))
    return Negotiated(blksize, windowsize, float(timeout), tuple(oack))
