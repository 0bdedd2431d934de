"""DHCPv6 messages on the wire: a strict parser and an encoder (RFC 8415 sections 8, 9 and 21).

A client message is msg-type, a 3-octet transaction id and options (code and
length in 16 bits each); a relay wraps it in RELAY-FORW messages (hop count,
link and peer addresses, the inner message in option 9). :func:`parse_packet`
unwraps every layer and refuses anything malformed with a
:class:`DropReason` the socket loop counts. Scapy's DHCPv6 layers are the
readable definition the tests build requests with and decode replies with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv6Address

from netboot.dhcp6.options import (
    HARDWARE_ETHERNET,
    HOP_COUNT_LIMIT,
    DuidType,
    MessageType,
    Option,
)

OPTION_HEAD = struct.Struct("!HH")
RELAY_HEAD = struct.Struct("!BB16s16s")  # msg-type, hop-count, link-address, peer-address
IA_HEAD = struct.Struct("!III")  # IAID, T1, T2 (RFC 8415 section 21.4)
IAADDR_HEAD = struct.Struct("!16sII")  # address, preferred and valid lifetimes (21.6)
Options = tuple[tuple[int, bytes], ...]
UNSPECIFIED = IPv6Address("::")

CLIENT_MESSAGES = frozenset({MessageType.SOLICIT, MessageType.REQUEST, MessageType.CONFIRM,
                             MessageType.RENEW, MessageType.REBIND, MessageType.RELEASE,
                             MessageType.DECLINE, MessageType.INFORMATION_REQUEST})


class DropReason(StrEnum):
    """Why a received DHCPv6 packet was not answered (each is a counter of the loop)."""

    TRUNCATED = "truncated"
    OPTION_OVERRUN = "option-overrun"
    NOT_CLIENT_MESSAGE = "not-a-client-message"
    TOO_MANY_HOPS = "too-many-hops"
    NO_RELAY_MESSAGE = "no-relay-message"
    NO_CLIENT_ID = "no-client-id"
    UNKNOWN_MAC = "no-mac"  # neither the DUID, option 79 nor the link-local address names one
    RATE_LIMITED = "rate-limited"


class Malformed(Exception):
    """A packet netboot will not answer; ``reason`` says why, ``detail`` where."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_options(data: bytes, start: int = 0) -> Options:
    """The options in ``data[start:]``, in order (a code may repeat: IA_NA, IAADDR)."""
    out = []
    at = start
    while at < len(data):
        if at + OPTION_HEAD.size > len(data):
            raise Malformed(DropReason.OPTION_OVERRUN, f"{len(data) - at} stray bytes at {at}")
        code, size = OPTION_HEAD.unpack_from(data, at)
        at += OPTION_HEAD.size
        if at + size > len(data):
            raise Malformed(DropReason.OPTION_OVERRUN, f"option {code} is {size} long but only "
                            f"{len(data) - at} bytes remain")
        out.append((code, data[at : at + size]))
        at += size
    return tuple(out)


def first(options: Options, code: int) -> bytes | None:
    return next((value for c, value in options if c == code), None)


def encode_options(options: Options) -> bytes:
    return b"".join(OPTION_HEAD.pack(code, len(value)) + value for code, value in options)


@dataclass(frozen=True, slots=True)
class Relay:
    """One RELAY-FORW layer around a client message (RFC 8415 section 9.1)."""

    hops: int
    link: IPv6Address
    peer: IPv6Address
    options: Options  # everything but option 9 (the interface id is echoed back)


@dataclass(frozen=True, slots=True)
class Message:
    """A well-formed client message, unwrapped from its relays (outermost first)."""

    message_type: MessageType
    xid: bytes
    options: Options
    relays: tuple[Relay, ...] = ()
    source: IPv6Address = UNSPECIFIED

    def option(self, code: int) -> bytes | None:
        return first(self.options, code)

    @property
    def client_id(self) -> bytes:
        value = self.option(Option.CLIENTID)
        assert value is not None  # parse_packet refuses a message without one
        return value

    @property
    def architectures(self) -> tuple[int, ...]:
        """Option 61: 16-bit types, most preferred first (RFC 5970 section 3.3)."""
        raw = self.option(Option.CLIENT_ARCH_TYPE) or b""
        return tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2))

    @property
    def vendor_classes(self) -> tuple[bytes, ...]:
        """The strings of option 16 (enterprise number, then length-prefixed data)."""
        raw = self.option(Option.VENDOR_CLASS) or b""
        return _strings(raw[4:])

    @property
    def user_classes(self) -> tuple[bytes, ...]:
        """The strings of option 15 (RFC 8415 section 21.15)."""
        return _strings(self.option(Option.USER_CLASS) or b"")

    @property
    def ia_nas(self) -> tuple[tuple[int, Options], ...]:
        """Each IA_NA's IAID and its own options."""
        out = []
        for code, value in self.options:
            if code == Option.IA_NA and len(value) >= IA_HEAD.size:
                out.append((IA_HEAD.unpack_from(value)[0], parse_options(value, IA_HEAD.size)))
        return tuple(out)


def _strings(raw: bytes) -> tuple[bytes, ...]:
    out, at = [], 0
    while at + 2 <= len(raw):
        size = int.from_bytes(raw[at : at + 2], "big")
        out.append(raw[at + 2 : at + 2 + size])
        at += 2 + size
    return tuple(out)


def parse_packet(data: bytes, source: IPv6Address = UNSPECIFIED) -> Message:
    """Decode a client message, relayed or not, or raise :class:`Malformed`."""
    relays: list[Relay] = []
    while True:
        if len(data) < 4:
            raise Malformed(DropReason.TRUNCATED, f"{len(data)} bytes")
        kind = data[0]
        if kind != MessageType.RELAY_FORW:
            break
        if len(data) < RELAY_HEAD.size:
            raise Malformed(DropReason.TRUNCATED, f"RELAY-FORW of {len(data)} bytes")
        if len(relays) > HOP_COUNT_LIMIT:
            raise Malformed(DropReason.TOO_MANY_HOPS, f"{len(relays)} relay layers")
        _, hops, link, peer = RELAY_HEAD.unpack_from(data)
        options = parse_options(data, RELAY_HEAD.size)
        inner = first(options, Option.RELAY_MSG)
        if inner is None:
            raise Malformed(DropReason.NO_RELAY_MESSAGE, "RELAY-FORW without option 9")
        relays.append(Relay(hops, IPv6Address(link), IPv6Address(peer),
                            tuple(o for o in options if o[0] != Option.RELAY_MSG)))
        data = inner
    try:
        message_type = MessageType(kind)
    except ValueError:
        raise Malformed(DropReason.NOT_CLIENT_MESSAGE, f"message type {kind}") from None
    if message_type not in CLIENT_MESSAGES:
        raise Malformed(DropReason.NOT_CLIENT_MESSAGE, f"{message_type.name} is not a client's")
    options = parse_options(data, 4)
    if first(options, Option.CLIENTID) is None:
        raise Malformed(DropReason.NO_CLIENT_ID, f"{message_type.name} without option 1")
    return Message(message_type, data[1:4], options, tuple(relays), source)


def mac_of_duid(duid: bytes) -> str | None:
    """The MAC in a DUID-LL or DUID-LLT of an Ethernet interface (RFC 8415 sections 11.2,
    11.4); None for other DUIDs (DUID-UUID, which OVMF and iPXE send, names none)."""
    if len(duid) < 4 or int.from_bytes(duid[2:4], "big") != HARDWARE_ETHERNET:
        return None
    kind = int.from_bytes(duid[:2], "big")
    if kind == DuidType.LL and len(duid) == 10:
        return duid[4:].hex(":")
    if kind == DuidType.LLT and len(duid) == 14:
        return duid[8:].hex(":")
    return None


def mac_of_eui64(address: IPv6Address) -> str | None:
    """The MAC a link-local address was formed from (RFC 4291 appendix A: ff:fe in the
    middle, the universal/local bit flipped); None for any other interface id."""
    packed = address.packed
    if not address.is_link_local or packed[11:13] != b"\xff\xfe":
        return None
    mac = bytes((packed[8] ^ 0x02,)) + packed[9:11] + packed[13:16]
    return mac.hex(":")


def mac_of(message: Message) -> str | None:
    """The client's MAC: from its DUID, else the first-hop relay's option 79 (RFC 6939),
    else its EUI-64 link-local source (not relayed)."""
    mac = mac_of_duid(message.client_id)
    if mac is not None:
        return mac
    if message.relays:
        lladdr = first(message.relays[-1].options, Option.CLIENT_LINKLAYER_ADDR)
        if lladdr is not None and len(lladdr) == 8 and \
                int.from_bytes(lladdr[:2], "big") == HARDWARE_ETHERNET:
            return lladdr[2:].hex(":")
        return mac_of_eui64(message.relays[-1].peer)
    return mac_of_eui64(message.source)


def encode_message(message_type: MessageType, xid: bytes, options: Options) -> bytes:
    return bytes((message_type,)) + xid + encode_options(options)


def wrap_relays(reply: bytes, relays: tuple[Relay, ...]) -> bytes:
    """``reply`` in a RELAY-REPL per relay layer, innermost first, each echoing its
    layer's interface id (RFC 8415 section 19.3)."""
    for relay in reversed(relays):
        echoed = tuple(o for o in relay.options if o[0] == Option.INTERFACE_ID)
        reply = (RELAY_HEAD.pack(MessageType.RELAY_REPL, relay.hops, relay.link.packed,
                                 relay.peer.packed)
                 + encode_options(((Option.RELAY_MSG, reply), *echoed)))
    return reply


def ia_na(iaid: int, t1: int, t2: int, options: Options) -> bytes:
    return IA_HEAD.pack(iaid, t1, t2) + encode_options(options)


def iaaddr(address: IPv6Address, preferred: int, valid: int) -> bytes:
    return IAADDR_HEAD.pack(address.packed, preferred, valid)


def status(code: int, message: str) -> bytes:
    return code.to_bytes(2, "big") + message.encode()


def vendor_class(enterprise: int, value: bytes) -> bytes:
    return enterprise.to_bytes(4, "big") + len(value).to_bytes(2, "big") + value


def duid_ll(mac: str) -> bytes:
    """A DUID-LL for this server's interface (RFC 8415 section 11.4)."""
    return (DuidType.LL.to_bytes(2, "big") + HARDWARE_ETHERNET.to_bytes(2, "big")
            + bytes.fromhex(mac.replace(":", "")))
