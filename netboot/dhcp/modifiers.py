"""Reply modifiers: small pure functions, each returning a reply with one thing changed.

A reply reads as the list of what it is made of, in the shape of the modifiers of
insomniacslk/dhcp's ``dhcpv4`` package::

    reply_from_request(request, with_message_type(MessageType.OFFER), with_your_ip(ip),
                       with_netmask(subnet), with_lease_time(7200), ...)

Each modifier takes a :class:`~netboot.dhcp.packet.Reply` and returns a new one; none
changes its argument. Options go on the wire in the order they are added, except 53 and
54 (first) and 82 (last), as :func:`~netboot.dhcp.packet.encode_options` orders them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from netboot.dhcp.options import MessageType, Option
from netboot.dhcp.packet import BROADCAST_FLAG, Modifier, Reply


def with_option(code: int, value: bytes) -> Modifier:
    """Option ``code`` set to ``value`` (in its old place if it was there)."""
    return lambda reply: replace(reply, options={**reply.options, code: value})


def without_option(code: int) -> Modifier:
    return lambda reply: replace(reply, options={c: v for c, v in reply.options.items()
                                                 if c != code})


def with_message_type(message_type: MessageType) -> Modifier:
    return with_option(Option.MESSAGE_TYPE, bytes((message_type,)))


def with_server_id(server: IPv4Address) -> Modifier:
    """Option 54, the address clients name this server by (RFC 2132 section 9.7)."""
    return with_option(Option.SERVER_ID, server.packed)


def with_your_ip(ip: IPv4Address) -> Modifier:
    """``yiaddr``: the address the client is given."""
    return lambda reply: replace(reply, yiaddr=ip)


def with_client_ip(ip: IPv4Address) -> Modifier:
    """``ciaddr``: an ACK echoes the client's own (RFC 2131 table 3)."""
    return lambda reply: replace(reply, ciaddr=ip)


def with_broadcast() -> Modifier:
    """The broadcast bit of ``flags`` set (RFC 2131 section 2, figure 2)."""
    return lambda reply: replace(reply, flags=reply.flags | BROADCAST_FLAG)


def with_destination(destination: tuple[str, int], to_chaddr: bool = False) -> Modifier:
    """Where the reply is sent: an address and a UDP port, and whether that address must
    be reached at ``chaddr`` (a client's ``yiaddr``, before it can answer ARP)."""
    return lambda reply: replace(reply, destination=destination, to_chaddr=to_chaddr)


def with_netmask(subnet: IPv4Network) -> Modifier:
    return with_option(Option.SUBNET_MASK, subnet.netmask.packed)


def with_router(router: IPv4Address) -> Modifier:
    return with_option(Option.ROUTER, router.packed)


def with_dns(servers: Iterable[IPv4Address]) -> Modifier:
    return with_option(Option.DNS_SERVERS, b"".join(a.packed for a in servers))


def with_hostname(hostname: str) -> Modifier:
    return with_option(Option.HOSTNAME, hostname.encode())


def with_domain_name(domain: str) -> Modifier:
    return with_option(Option.DOMAIN_NAME, domain.encode())


def with_broadcast_address(subnet: IPv4Network) -> Modifier:
    return with_option(Option.BROADCAST_ADDRESS, subnet.broadcast_address.packed)


def with_message(text: str) -> Modifier:
    """Option 56: why, for the client's log (RFC 2132 section 9.9), cut to one option."""
    return with_option(Option.MESSAGE, text.encode()[:255])


def with_lease_time(seconds: int) -> Modifier:
    """Options 51, 58 and 59: the lease, and the renewal (T1) and rebinding (T2) times at
    the fractions RFC 2131 section 4.4.5 gives as defaults, 1/2 and 7/8 of it."""

    def modify(reply: Reply) -> Reply:
        return replace(reply, options={
            **reply.options,
            Option.LEASE_TIME: seconds.to_bytes(4, "big"),
            Option.RENEWAL_TIME: (seconds // 2).to_bytes(4, "big"),
            Option.REBINDING_TIME: (seconds * 7 // 8).to_bytes(4, "big"),
        })

    return modify
