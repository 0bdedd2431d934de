"""DHCP packets on the wire: a strict ``struct`` parser and encoder for the server's hot path.

Scapy's ``BOOTP``/``DHCP`` layers are the readable definition of these packets:
the tests build firmware-shaped requests with them and decode every reply
with them, and :func:`describe` uses them to show an odd packet in a debug
line. Scapy needs about 0.2 ms to parse a DISCOVER and 0.7 ms to build an
OFFER, a third of what one core has per exchange at the rate netboot aims
for, so the server parses with :func:`parse_request` (a few microseconds),
which is also stricter: every malformed packet is refused with a
:class:`DropReason` that the socket loop counts.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address

from netboot.dhcp.options import (
    CLIENT_PORT,
    FILE_SIZE,
    IPXE_USER_CLASS,
    MAGIC_COOKIE,
    SERVER_PORT,
    SNAME_SIZE,
    HardwareType,
    MessageType,
    Op,
    Option,
)

# RFC 2131 section 2, figure 1: op htype hlen hops xid secs flags ciaddr yiaddr siaddr
# giaddr chaddr(16) sname(64) file(128), then the options field.
HEADER = struct.Struct(f"!BBBBIHH4s4s4s4s16s{SNAME_SIZE}s{FILE_SIZE}s")
OPTIONS_START = HEADER.size + len(MAGIC_COOKIE)  # 240
BOOTP_MIN_SIZE = 300  # RFC 1542 section 2.1: relays may drop shorter BOOTP messages
BROADCAST_FLAG = 0x8000  # RFC 2131 section 2, figure 2
ZERO = IPv4Address(0)
BROADCAST = IPv4Address("255.255.255.255")

# Options whose value has a fixed or minimum length (RFC 2132, RFC 4578): a request that
# breaks these is malformed, not merely unusual. (fixed length, or None; minimum length)
_LENGTHS: dict[int, tuple[int | None, int]] = {
    Option.MESSAGE_TYPE: (1, 1),
    Option.REQUESTED_ADDRESS: (4, 4),
    Option.SERVER_ID: (4, 4),
    Option.MAX_MESSAGE_SIZE: (2, 2),
    Option.OVERLOAD: (1, 1),
    Option.CLIENT_ID: (None, 2),
    Option.VENDOR_CLASS: (None, 1),
    Option.USER_CLASS: (None, 1),
    Option.CLIENT_ARCHITECTURE: (None, 2),
    Option.CLIENT_UUID: (17, 17),
    Option.PARAMETER_REQUEST_LIST: (None, 1),
}


_VENDOR_ARCH = re.compile(rb"^(?:PXEClient|HTTPClient):Arch:(\d{5})")


class DropReason(StrEnum):
    """Why a received packet was not answered (each is a counter of the socket loop)."""

    TRUNCATED = "truncated"
    NOT_REQUEST = "not-a-request"
    NOT_ETHERNET = "not-ethernet"
    BAD_COOKIE = "bad-magic-cookie"
    OPTION_OVERRUN = "option-overrun"
    BAD_OPTION_LENGTH = "bad-option-length"
    NO_MESSAGE_TYPE = "no-message-type"
    BAD_MESSAGE_TYPE = "bad-message-type"
    BAD_CHADDR = "bad-chaddr"
    BAD_SOURCE_PORT = "bad-source-port"
    RATE_LIMITED = "rate-limited"
    UNKNOWN_RATE_LIMITED = "unknown-rate-limited"


class Malformed(Exception):
    """A packet netboot will not answer; ``reason`` says why, ``detail`` where."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Request:
    """A well-formed client message, as the server received it."""

    xid: int
    secs: int
    flags: int
    hops: int
    ciaddr: IPv4Address
    giaddr: IPv4Address
    chaddr: bytes  # the 16 octets as received (echoed unchanged)
    mac: str
    message_type: MessageType
    options: dict[int, bytes]
    source: tuple[str, int] = ("0.0.0.0", CLIENT_PORT)
    local_port: int = 67  # 67, or 4011 for a PXE boot server request

    def option_ip(self, code: int) -> IPv4Address | None:
        value = self.options.get(code)
        return IPv4Address(value) if value is not None else None

    @property
    def requested_address(self) -> IPv4Address | None:
        return self.option_ip(Option.REQUESTED_ADDRESS)

    @property
    def server_id(self) -> IPv4Address | None:
        return self.option_ip(Option.SERVER_ID)

    @property
    def vendor_class(self) -> bytes:
        return self.options.get(Option.VENDOR_CLASS, b"")

    @property
    def architectures(self) -> tuple[int, ...]:
        """Option 93: a list of 16-bit types, most preferred first (RFC 4578 section 2.1).
        Without it, the ``Arch:NNNNN`` field of a PXE/HTTP vendor class (PXE 2.1 section
        2.2.3), which some clients send alone."""
        raw = self.options.get(Option.CLIENT_ARCHITECTURE, b"")
        if raw:
            return tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2))
        match = _VENDOR_ARCH.match(self.vendor_class)
        return (int(match[1]),) if match else ()

    @property
    def is_ipxe(self) -> bool:
        """iPXE says so in option 77 and always sends its option 175 (iPXE dhcp.c)."""
        return (Option.IPXE_ENCAPSULATED in self.options
                or IPXE_USER_CLASS in _user_classes(self.options.get(Option.USER_CLASS, b"")))


def _user_classes(raw: bytes) -> set[bytes]:
    """Option 77 values. RFC 3004 makes it a list of length-prefixed strings, but iPXE
    (and others) send one bare string, so both readings count."""
    found = {raw}
    at = 0
    while at < len(raw):
        size = raw[at]
        if size == 0 or at + 1 + size > len(raw):
            break
        found.add(raw[at + 1 : at + 1 + size])
        at += 1 + size
    return found


def _walk(data: bytes, start: int, end: int, options: dict[int, bytes]) -> None:
    """Add the options in ``data[start:end]`` to ``options``; repeats are concatenated
    (RFC 3396). A missing END is tolerated, as every server does; an overrun is not."""
    at = start
    while at < end:
        code = data[at]
        if code == Option.PAD:
            at += 1
            continue
        if code == Option.END:
            return
        if at + 1 >= end:
            raise Malformed(DropReason.OPTION_OVERRUN,
                            f"option {code} at offset {at} has no length")
        size = data[at + 1]
        if at + 2 + size > end:
            raise Malformed(DropReason.OPTION_OVERRUN,
                            f"option {code} at offset {at} is {size} long but only "
                            f"{end - at - 2} bytes remain")
        value = data[at + 2 : at + 2 + size]
        options[code] = options[code] + value if code in options else value
        at += 2 + size


def parse_request(data: bytes, source: tuple[str, int] = ("0.0.0.0", CLIENT_PORT),
                  local_port: int = 67) -> Request:
    """Decode a client message or raise :class:`Malformed` with the reason and the place."""
    if len(data) < OPTIONS_START:
        raise Malformed(DropReason.TRUNCATED, f"{len(data)} bytes, a DHCP message has at least "
                        f"{OPTIONS_START}")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, _yiaddr, _siaddr, giaddr, chaddr, sname,
     bootfile) = HEADER.unpack_from(data)
    if op != Op.BOOTREQUEST:
        raise Malformed(DropReason.NOT_REQUEST, f"op {op}")
    if local_port == SERVER_PORT and source[1] != CLIENT_PORT and \
            not (source[1] == SERVER_PORT and giaddr != bytes(4)):
        # RFC 2131 section 4.1: clients send from 68, relays (giaddr set) from 67. A PXE
        # boot server request (port 4011) is answered at whatever port it came from.
        raise Malformed(DropReason.BAD_SOURCE_PORT, f"source port {source[1]}"
                        f"{' (a relay sends from 67)' if giaddr != bytes(4) else ''}")
    if htype != HardwareType.ETHERNET or hlen != 6:
        raise Malformed(DropReason.NOT_ETHERNET, f"htype {htype} hlen {hlen}")
    if data[HEADER.size : OPTIONS_START] != MAGIC_COOKIE:
        raise Malformed(DropReason.BAD_COOKIE,
                        f"magic cookie {data[HEADER.size:OPTIONS_START].hex()}")
    if chaddr[0] & 1 or chaddr[:6] == bytes(6):
        raise Malformed(DropReason.BAD_CHADDR, f"chaddr {chaddr[:6].hex(':')} is not a NIC's")
    options: dict[int, bytes] = {}
    _walk(data, OPTIONS_START, len(data), options)
    overload = options.get(Option.OVERLOAD)
    if overload is not None:  # RFC 2132 section 9.3: file (1), sname (2) or both (3) hold options
        file_at = HEADER.size - FILE_SIZE
        if overload[0] & 1:
            _walk(data, file_at, file_at + FILE_SIZE, options)
        if overload[0] & 2:
            _walk(data, file_at - SNAME_SIZE, file_at, options)
    for code, (exact, least) in _LENGTHS.items():
        value = options.get(code)
        if value is not None and (len(value) < least or (exact and len(value) != exact)):
            raise Malformed(DropReason.BAD_OPTION_LENGTH, f"option {code} has length {len(value)}")
    kind = options.get(Option.MESSAGE_TYPE)
    if kind is None:
        raise Malformed(DropReason.NO_MESSAGE_TYPE, "no option 53 (a BOOTP request)")
    try:
        message_type = MessageType(kind[0])
    except ValueError:
        raise Malformed(DropReason.BAD_MESSAGE_TYPE, f"message type {kind[0]}") from None
    if message_type in (MessageType.OFFER, MessageType.ACK, MessageType.NAK):
        raise Malformed(DropReason.BAD_MESSAGE_TYPE, f"{message_type.name} is a server message")
    del sname, bootfile
    return Request(xid=xid, secs=secs, flags=flags, hops=hops, ciaddr=IPv4Address(ciaddr),
                   giaddr=IPv4Address(giaddr), chaddr=chaddr, mac=chaddr[:6].hex(":"),
                   message_type=message_type, options=options, source=source,
                   local_port=local_port)


# Reply options go out in this order; 82 last, as RFC 3046 section 2.1 asks of relays.
_FIRST = (Option.MESSAGE_TYPE, Option.SERVER_ID)
_LAST = (Option.RELAY_AGENT_INFORMATION,)
# Request options every reply carries back unchanged.
_ECHOED = (Option.CLIENT_ID, Option.CLIENT_UUID, Option.RELAY_AGENT_INFORMATION)


@dataclass(slots=True)
class Reply:
    """A server message and where it goes. Built by :func:`reply_from_request` and the
    modifiers of :mod:`netboot.dhcp.modifiers`, each of which returns a new reply and
    changes neither the one it is given nor its ``options``. (Not frozen: a frozen
    dataclass's ``__init__`` would double the cost of every modifier.)"""

    xid: int
    flags: int
    chaddr: bytes
    giaddr: IPv4Address
    destination: tuple[str, int]
    # The destination is ``yiaddr``, which the client will not answer ARP for before it
    # has this reply: the sender delivers it to ``chaddr`` itself (RFC 2131 section 4.1).
    to_chaddr: bool = False
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    sname: bytes = b""
    file: bytes = b""
    secs: int = 0
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def message_type(self) -> MessageType:
        """Option 53: the type is kept in one place, the option that goes on the wire."""
        return MessageType(self.options[Option.MESSAGE_TYPE][0])


Modifier = Callable[[Reply], Reply]


def reply_from_request(request: Request, *modifiers: Modifier) -> Reply:
    """What RFC 2131 (table 3), RFC 3046 (82), RFC 6842 (61) and RFC 4578 (97) say a reply
    copies from its request, broadcast to the client port, then ``modifiers`` in order."""
    options = {code: request.options[code] for code in _ECHOED if code in request.options}
    reply = Reply(xid=request.xid, flags=request.flags, chaddr=request.chaddr,
                  giaddr=request.giaddr, destination=(str(BROADCAST), CLIENT_PORT),
                  options=options)
    for modify in modifiers:
        reply = modify(reply)
    return reply


def encode_options(options: dict[int, bytes]) -> bytes:
    """TLV-encode ``options`` (53 and 54 first, 82 last), values over 255 bytes split as
    RFC 3396 allows, then END."""
    order = [c for c in _FIRST if c in options]
    order += [c for c in options if c not in _FIRST and c not in _LAST]
    order += [c for c in _LAST if c in options]
    out = bytearray()
    for code in order:
        value = options[code]
        for at in range(0, max(len(value), 1), 255):
            chunk = value[at : at + 255]
            out += bytes((code, len(chunk))) + chunk
    out.append(Option.END)
    return bytes(out)


def encode_reply(reply: Reply) -> bytes:
    """The bytes of ``reply``, padded to the BOOTP minimum size."""
    head = HEADER.pack(Op.BOOTREPLY, HardwareType.ETHERNET, 6, 0, reply.xid, reply.secs,
                       reply.flags, reply.ciaddr.packed, reply.yiaddr.packed, reply.siaddr.packed,
                       reply.giaddr.packed, reply.chaddr, reply.sname, reply.file)
    packet = head + MAGIC_COOKIE + encode_options(reply.options)
    return packet.ljust(BOOTP_MIN_SIZE, b"\0")


def describe(data: bytes) -> str:
    """A one-line account of any packet, by scapy, for debug logs of odd packets."""
    from scapy.layers.dhcp import BOOTP  # heavy import: only when a debug line needs it

    try:
        return BOOTP(data).summary() + " " + repr(BOOTP(data).payload)[:300]
    except Exception as err:  # scapy cannot make sense of it either: say so, never raise
        return f"{len(data)} bytes scapy cannot decode ({err.__class__.__name__})"
