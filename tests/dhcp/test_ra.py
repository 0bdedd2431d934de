"""The router advertisement netboot sends, decoded by scapy: no flags, or the M flag."""

from __future__ import annotations

from ipaddress import IPv6Network

from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr

from netboot.dhcp.ra import advertisement

MAC = "52:54:00:00:00:fe"


def test_without_dhcp6_the_ra_has_no_flags_no_prefix_and_lifetime_0():
    ra = ICMPv6ND_RA(advertisement(MAC))
    assert (ra.M, ra.O, ra.routerlifetime) == (0, 0, 0)
    assert ICMPv6NDOptPrefixInfo not in ra and ra[ICMPv6NDOptSrcLLAddr].lladdr == MAC


def test_with_dhcp6_the_ra_sets_m_and_puts_the_prefix_on_link_but_not_for_slaac():
    ra = ICMPv6ND_RA(advertisement(MAC, IPv6Network("fd4e:6574:626f:1::/64"), (600, 1200)))
    assert (ra.M, ra.routerlifetime) == (1, 0)
    prefix = ra[ICMPv6NDOptPrefixInfo]
    assert (prefix.prefix, prefix.prefixlen, prefix.L, prefix.A) == ("fd4e:6574:626f:1::", 64,
                                                                       1, 0)
    assert (prefix.preferredlifetime, prefix.validlifetime) == (600, 1200)
