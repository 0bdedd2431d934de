"""The DHCPv6 server's whole judgement: one client message in, at most one reply out, no I/O.

netboot answers registered clients only, each with its fixed address (see
:class:`netboot.config.Dhcp6Config`) and a boot file URL (RFC 5970): the
loader over TFTP for a PXE ROM, over HTTP for UEFI HTTP boot, the client's
iPXE script for iPXE (the same choice as DHCPv4's, :mod:`netboot.dhcp.boot`).
A client is known by the MAC its DUID carries (DUID-LL/LLT), a first-hop
relay's option 79 (RFC 6939), or its EUI-64 link-local address: OVMF and
iPXE send DUID-UUIDs, which name no MAC.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Protocol

from netboot.boot import urls
from netboot.config import Config
from netboot.dhcp.boot import HTTP_LOADERS, UEFI_LOADERS
from netboot.dhcp.options import HTTP_VENDOR_CLASS, IPXE_USER_CLASS, ClientArch
from netboot.dhcp6.options import PXE_ENTERPRISE, MessageType, Option, StatusCode
from netboot.dhcp6.packet import (
    IAADDR_HEAD,
    DropReason,
    Message,
    Options,
    encode_message,
    ia_na,
    iaaddr,
    mac_of,
    status,
    vendor_class,
    wrap_relays,
)
from netboot.inventory.clients import Client
from netboot.inventory.stages import Stage

MAX_PREFERENCE = b"\xff"  # RFC 8415 section 18.2.1: the client takes this Advertise at once
# Messages that must name this server (RFC 8415 section 16), and those that must not.
NAME_THE_SERVER = frozenset({MessageType.REQUEST, MessageType.RENEW, MessageType.RELEASE,
                             MessageType.DECLINE})
NAME_NO_SERVER = frozenset({MessageType.SOLICIT, MessageType.CONFIRM, MessageType.REBIND})


class ClientView(Protocol):
    """The registered clients, as :func:`decide` needs them."""

    def find(self, mac: str) -> Client | None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The encoded reply (or None), the client's MAC if known, and what to log and record."""

    reply: bytes | None
    note: str
    mac: str | None = None
    stage: Stage | None = None  # boot stage to record for a registered client
    warning: bool = False  # an operator should see this line
    drop: DropReason | None = None  # not answerable at all: counted as a drop


@dataclass(frozen=True, slots=True)
class BootUrl:
    """Option 59's URL and the vendor class to answer with (PXE and HTTP boot look for it)."""

    url: str
    vendor_class: bytes | None = None


def choose_boot(message: Message, config: Config, mac: str) -> BootUrl | None:
    """The boot file URL for ``message``, or None for an architecture with no loader. No
    boot tokens: DHCPv6 serves IPv6-only VLANs, where dhcp.mode is off and private files
    go by address (netboot.boot.catalog.holds_address)."""
    if IPXE_USER_CLASS in message.user_classes:
        return BootUrl(urls.script_url(config, mac))
    vendor = b"".join(message.vendor_classes)
    arches = message.architectures
    if vendor.startswith(HTTP_VENDOR_CLASS):
        for arch in arches:
            if arch in HTTP_LOADERS:
                return BootUrl(urls.url(config, HTTP_LOADERS[ClientArch(arch)]), HTTP_VENDOR_CLASS)
        return None
    for arch in arches:
        if arch in UEFI_LOADERS:
            # No "PXEClient" back: with it EDK2 takes the reply for a BINL offer and asks a
            # boot server on port 4011 for the file (PxeBcDhcp6.c PxeBcRetryDhcp6Binl);
            # without it the reply is a DHCP offer whose URL it boots at once.
            return BootUrl(urls.tftp_url(config, UEFI_LOADERS[ClientArch(arch)]))
    return None


def decide(message: Message, config: Config, clients: ClientView,
           server_duid: bytes) -> Decision:
    """What netboot answers to ``message`` (see the module docstring), as this server
    (``server_duid``)."""
    kind = message.message_type.name
    if not config.dhcp6.enabled:
        return Decision(None, "dhcp6.subnet is not set")
    server_id = message.option(Option.SERVERID)
    if message.message_type in NAME_THE_SERVER and server_id != server_duid:
        return Decision(None, f"{kind} for another server: not for us")
    if message.message_type in NAME_NO_SERVER and server_id is not None:
        return Decision(None, f"{kind} with a server id: discarded (RFC 8415 section 16)")
    if server_id is not None and server_id != server_duid:
        return Decision(None, f"{kind} for another server: not for us")
    mac = mac_of(message)
    if mac is None:
        return Decision(None, f"{kind} from {message.source}: no MAC in its DUID, a relay's "
                        "option 79 or an EUI-64 address; not answered",
                        drop=DropReason.UNKNOWN_MAC)
    client = clients.find(mac)
    if client is None:
        return Decision(None, f"{kind} from an unregistered machine: ignored "
                        "(`netboot client add` registers it)", mac)
    address = config.ipv6_of(client.ip)
    assert address is not None
    boot = choose_boot(message, config, mac)
    common: list[tuple[int, bytes]] = [(Option.SERVERID, server_duid),
                                       (Option.CLIENTID, message.client_id)]
    if message.message_type is MessageType.CONFIRM:
        return _confirm(message, config, mac, common)
    if message.message_type in (MessageType.RELEASE, MessageType.DECLINE):
        note = (f"{client.hostname} reports its fixed address {address} in use by another "
                "machine: find the duplicate" if message.message_type is MessageType.DECLINE
                else f"release of fixed address {address}")
        return Decision(_reply(message, MessageType.REPLY, (
            *common, (Option.STATUS_CODE, status(StatusCode.SUCCESS, "fixed address")))),
            note, mac, warning=message.message_type is MessageType.DECLINE)
    options = list(common)
    if message.message_type is not MessageType.INFORMATION_REQUEST:
        options += _addresses(message, config, address)
    if boot is not None:
        options.append((Option.BOOTFILE_URL, boot.url.encode()))
        if boot.vendor_class is not None:
            options.append((Option.VENDOR_CLASS, vendor_class(PXE_ENTERPRISE, boot.vendor_class)))
    rapid = (message.message_type is MessageType.SOLICIT
             and message.option(Option.RAPID_COMMIT) is not None)
    if message.message_type is MessageType.SOLICIT and not rapid:
        options.append((Option.PREFERENCE, MAX_PREFERENCE))
        answer = MessageType.ADVERTISE
    else:
        if rapid:
            options.append((Option.RAPID_COMMIT, b""))
        answer = MessageType.REPLY
    booting = rapid or message.message_type is MessageType.REQUEST
    shown = f", boot {urls.redact(boot.url)}" if boot else ", no boot file URL"
    what = "advertise" if answer is MessageType.ADVERTISE else "reply"
    return Decision(_reply(message, answer, tuple(options)),
                    f"{what} {address}{shown}" if message.message_type is not
                    MessageType.INFORMATION_REQUEST else f"information reply{shown}",
                    mac, stage=Stage.DHCP if booting else None)


def _addresses(message: Message, config: Config, address: IPv6Address) -> list[tuple[int, bytes]]:
    """An IA_NA for each one asked for, holding the client's fixed address (RFC 8415 section
    21.4: T1 half and T2 four fifths of the preferred lifetime)."""
    preferred, valid = config.dhcp6.preferred_lifetime, config.dhcp6.valid_lifetime
    return [(Option.IA_NA, ia_na(iaid, preferred // 2, preferred * 4 // 5,
                                 ((Option.IAADDR, iaaddr(address, preferred, valid)),)))
            for iaid, _ in message.ia_nas]


def _confirm(message: Message, config: Config, mac: str,
             common: list[tuple[int, bytes]]) -> Decision:
    """RFC 8415 section 18.3.3: whether the client's addresses are on this link."""
    subnet = config.dhcp6.subnet
    assert subnet is not None
    asked = [IPv6Address(value[:16]) for _, ia in message.ia_nas for code, value in ia
             if code == Option.IAADDR and len(value) >= IAADDR_HEAD.size]
    if not asked:
        return Decision(None, "CONFIRM without addresses: not answered", mac)
    on_link = all(a in subnet for a in asked)
    code = StatusCode.SUCCESS if on_link else StatusCode.NOT_ON_LINK
    text = "on link" if on_link else f"not all in {subnet}"
    return Decision(_reply(message, MessageType.REPLY,
                           (*common, (Option.STATUS_CODE, status(code, text)))),
                    f"confirm: {text}", mac)


def _reply(message: Message, answer: MessageType, options: Options) -> bytes:
    return wrap_relays(encode_message(answer, message.xid, options), message.relays)
