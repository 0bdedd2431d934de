"""TFTP packets on the wire: tftpy's codec, with its faults fixed here.

tftpy (0.8.7) parses and builds every packet type and that part is sound; what
this module adds is what a server facing arbitrary input needs:

- any parse failure (tftpy raises TftpException, but also UnicodeDecodeError
  for a non-ASCII name and struct.error for trailing bytes after the last
  option) becomes one :class:`Malformed`, so the loop can drop and count it;
- option names are case-insensitive (RFC 2347), tftpy keeps them as sent;
- an ERROR packet carries our own message (tftpy's encoder ignores
  ``errmsg`` and always sends the code's stock text);
- the two packets of the hot path (the 4-byte DATA header and ACK) are packed
  and unpacked directly: tftpy's versions copy the payload and log twice per
  block. Their bytes are checked against tftpy's codec in the tests.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import (
    TftpPacketACK,
    TftpPacketERR,
    TftpPacketOACK,
    TftpPacketRRQ,
    TftpPacketWRQ,
)
from tftpy.TftpShared import TftpException


class Opcode(IntEnum):
    """RFC 1350 section 5, plus OACK from RFC 2347."""

    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6


class ErrorCode(IntEnum):
    """RFC 1350 appendix, plus 8 from RFC 2347."""

    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    BAD_OPTIONS = 8


class Malformed(ValueError):
    """Bytes that are not a TFTP packet; the message says why."""


@dataclass(frozen=True)
class Request:
    """A read or write request (RFC 1350), options lower-cased (RFC 2347)."""

    opcode: Opcode
    filename: str
    mode: str
    options: dict[str, str] = field(default_factory=dict)


class Ack(NamedTuple):
    """A NamedTuple, not a dataclass: one is made per block, and a tuple is cheaper to make."""

    block: int


@dataclass(frozen=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True)
class Other:
    """A well-formed packet a read-only server never expects from a client (DATA, OACK)."""

    opcode: Opcode


Packet = Request | Ack | Error | Other

_HEADER = struct.Struct("!HH")
_ACK = Opcode.ACK.to_bytes(2, "big")
_FACTORY = TftpPacketFactory()
# tftpy logs every ERROR packet it decodes at level ERROR: a client cancelling is
# not our error. netboot logs what matters about each transfer itself.
logging.getLogger("tftpy.TftpPacketTypes").setLevel(logging.CRITICAL)


def parse(data: bytes) -> Packet:
    """Decode one datagram, or raise :class:`Malformed`."""
    if len(data) == 4 and data[:2] == _ACK:  # the hot path: one per block
        return Ack(_HEADER.unpack(data)[1])
    try:
        packet = _FACTORY.parse(data)
    except (TftpException, UnicodeDecodeError, struct.error, ValueError) as err:
        raise Malformed(str(err) or type(err).__name__) from None
    if isinstance(packet, TftpPacketRRQ | TftpPacketWRQ):
        options = {k.lower(): v for k, v in packet.options.items()}
        return Request(Opcode(packet.opcode), packet.filename, packet.mode, options)
    if isinstance(packet, TftpPacketACK):
        return Ack(packet.blocknumber)
    if isinstance(packet, TftpPacketERR):
        message = packet.errmsg.decode("ascii", "replace") if packet.errmsg else ""
        return Error(packet.errorcode, message)
    return Other(Opcode(packet.opcode))


def data_header(block: int) -> bytes:
    """The 4 bytes before a DATA payload; block numbers wrap to 0 after 65535."""
    return _HEADER.pack(Opcode.DATA, block & 0xFFFF)


def encode_ack(block: int) -> bytes:
    return _HEADER.pack(Opcode.ACK, block & 0xFFFF)


def encode_error(code: ErrorCode, message: str) -> bytes:
    """An ERROR packet with ``message`` (ASCII, as RFC 1350 asks), not tftpy's stock text."""
    text = message.encode("ascii", "replace").replace(b"\0", b"?")[:400]
    return _HEADER.pack(Opcode.ERROR, code) + text + b"\0"


def encode_oack(options: dict[str, str]) -> bytes:
    packet = TftpPacketOACK()
    packet.options = options
    return packet.encode().buffer


def encode_request(opcode: Opcode, filename: str, options: dict[str, str] | None = None) -> bytes:
    """An octet-mode RRQ/WRQ as a client sends it (the tests use this)."""
    packet = TftpPacketRRQ() if opcode is Opcode.RRQ else TftpPacketWRQ()
    packet.filename, packet.mode = filename, "octet"
    packet.options = options or {}
    return packet.encode().buffer

