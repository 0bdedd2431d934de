"""Reply modifiers: each returns a new reply with one thing changed, in the order given."""

from __future__ import annotations

from ipaddress import IPv4Address

from scapy.layers.dhcp import DHCP

from netboot.dhcp.modifiers import (
    with_lease_time,
    with_message_type,
    with_option,
    with_router,
    with_server_id,
    with_your_ip,
)
from netboot.dhcp.options import MessageType
from netboot.dhcp.packet import encode_reply, parse_request, reply_from_request
from tests.support.dhcp_frames import decode, options, plain

MAC = "52:54:00:12:34:56"
SERVER = IPv4Address("198.18.0.1")


def skeleton():
    return reply_from_request(parse_request(plain(MAC)), with_message_type(MessageType.OFFER),
                              with_server_id(SERVER))


def test_modifier_leaves_the_reply_it_is_given_unchanged():
    reply = skeleton()
    before = (reply.yiaddr, dict(reply.options))
    changed = with_router(IPv4Address("198.18.0.126"))(with_your_ip(IPv4Address(9))(reply))
    assert (reply.yiaddr, reply.options) == before
    assert changed.yiaddr == IPv4Address(9)


def test_options_go_on_the_wire_in_the_order_they_were_added():
    reply = reply_from_request(parse_request(plain(MAC)), with_option(28, b"\xc6\x12\x00\xff"),
                               with_message_type(MessageType.OFFER), with_option(1, b"\xff" * 4),
                               with_server_id(SERVER), with_option(28, b"\xc6\x12\x00\x7f"))
    sent = [item[0] for item in decode(encode_reply(reply))[DHCP].options
            if isinstance(item, tuple)]
    assert sent == ["message-type", "server_id", "broadcast_address", "subnet_mask"]
    assert options(decode(encode_reply(reply)))[28] == "198.18.0.127"


def test_lease_time_comes_with_renewal_at_half_and_rebinding_at_seven_eighths():
    opts = options(decode(encode_reply(with_lease_time(7200)(skeleton()))))
    assert (opts[51], opts[58], opts[59]) == (7200, 3600, 6300)

