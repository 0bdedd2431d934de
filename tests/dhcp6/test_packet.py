"""DHCPv6 packets: malformed ones refused with a reason, MACs found where firmware puts them."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from netboot.dhcp6.packet import DropReason, Malformed, mac_of_duid, mac_of_eui64, parse_packet
from tests.support.dhcp6_frames import link_local, linux, ovmf_pxe

MAC = "52:54:00:12:34:56"


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x01\x00", DropReason.TRUNCATED),
    (b"\x02\x00\x00\x01" + bytes(4), DropReason.NOT_CLIENT_MESSAGE),  # an ADVERTISE
    (b"\x01\x00\x00\x01\x00\x01\x00\x40\x00", DropReason.OPTION_OVERRUN),
    (b"\x01\x00\x00\x01\x00\x08\x00\x02\x00\x00", DropReason.NO_CLIENT_ID),
    (b"\x0c\x00" + bytes(32), DropReason.NO_RELAY_MESSAGE),
], ids=["truncated", "advertise", "overrun", "no-client-id", "relay-without-message"])
def test_malformed_packets_are_refused_with_their_reason(data, reason):
    with pytest.raises(Malformed) as err:
        parse_packet(data)
    assert err.value.reason is reason


def test_relays_nested_past_the_hop_limit_are_refused():
    data = linux(MAC)
    for _ in range(10):
        data = (b"\x0c\x00" + bytes(32) + (9).to_bytes(2, "big") + len(data).to_bytes(2, "big")
                + data)
    with pytest.raises(Malformed) as err:
        parse_packet(data)
    assert err.value.reason is DropReason.TOO_MANY_HOPS


def test_the_mac_of_a_duid_ll_and_none_of_a_duid_uuid():
    assert mac_of_duid(parse_packet(linux(MAC)).client_id) == MAC
    assert mac_of_duid(parse_packet(ovmf_pxe()).client_id) is None


def test_the_mac_of_an_eui64_link_local_address_and_none_of_another():
    assert mac_of_eui64(link_local(MAC)) == MAC
    assert mac_of_eui64(IPv6Address("fe80::1")) is None
    assert mac_of_eui64(IPv6Address("fd00::5054:ff:fe12:3456")) is None  # not link-local
