"""Client DHCPv6 messages shaped like those of real firmware, built with scapy.

OVMF's PXEv6 and HTTPv6 boot (EDK2 NetworkPkg PxeBcDhcp6.c, HttpBootDhcp6.c)
and iPXE's DHCPv6 (src/net/udp/dhcpv6.c) send a DUID-UUID, an IA_NA,
option 61 and a vendor class (iPXE: user class "iPXE"), from their EUI-64
link-local address.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from scapy.layers import dhcp6
from scapy.layers.dhcp6 import (
    DHCP6,
    DUID_LL,
    DUID_UUID,
    USER_CLASS_DATA,
    VENDOR_CLASS_DATA,
    DHCP6_Solicit,
    DHCP6OptClientArchType,
    DHCP6OptClientId,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptOptReq,
    DHCP6OptUserClass,
    DHCP6OptVendorClass,
    dhcp6_cls_by_type,
)

SYSTEM_UUID = "6f1b43a2-c1d8-4e1e-9a2a-b5bd0f0c7e11"
IAID = 0x0C7E1100
XID = 0x5EED12


def link_local(mac: str) -> IPv6Address:
    """The EUI-64 link-local address firmware forms from ``mac`` (RFC 4291 appendix A)."""
    b = bytes.fromhex(mac.replace(":", ""))
    return IPv6Address(b"\xfe\x80" + bytes(6) + bytes((b[0] ^ 2,)) + b[1:3] + b"\xff\xfe"
                       + b[3:6])


def ovmf_pxe(kind=DHCP6_Solicit, arch: int = 7, *extra) -> bytes:
    """OVMF's PXEv6: DUID-UUID, IA_NA, ORO for 59/60/23/24, option 61, PXEClient class."""
    return _build(kind, DHCP6OptClientId(duid=DUID_UUID(uuid=SYSTEM_UUID)),
                  DHCP6OptIA_NA(iaid=IAID), DHCP6OptOptReq(reqopts=[59, 60, 23, 24]),
                  DHCP6OptElapsedTime(), DHCP6OptClientArchType(archtypes=[arch]),
                  DHCP6OptVendorClass(enterprisenum=343, vcdata=[VENDOR_CLASS_DATA(
                      data=f"PXEClient:Arch:{arch:05d}:UNDI:003000".encode())]), *extra)


def ovmf_http(kind=DHCP6_Solicit, *extra) -> bytes:
    """OVMF's HTTPv6 boot: as PXE, arch 16 and the HTTPClient class."""
    return _build(kind, DHCP6OptClientId(duid=DUID_UUID(uuid=SYSTEM_UUID)),
                  DHCP6OptIA_NA(iaid=IAID), DHCP6OptOptReq(reqopts=[59, 60, 23, 24]),
                  DHCP6OptClientArchType(archtypes=[16]),
                  DHCP6OptVendorClass(enterprisenum=343, vcdata=[VENDOR_CLASS_DATA(
                      data=b"HTTPClient:Arch:00016:UNDI:003000")]), *extra)


def ipxe(kind=DHCP6_Solicit, *extra) -> bytes:
    """iPXE's own DHCPv6: DUID-UUID, IA_NA, user class iPXE, arch 7."""
    return _build(kind, DHCP6OptClientId(duid=DUID_UUID(uuid=SYSTEM_UUID)),
                  DHCP6OptIA_NA(iaid=IAID), DHCP6OptOptReq(reqopts=[23, 24, 59]),
                  DHCP6OptClientArchType(archtypes=[7]),
                  DHCP6OptUserClass(userclassdata=[USER_CLASS_DATA(data=b"iPXE")]), *extra)


def linux(mac: str, kind=DHCP6_Solicit, *extra) -> bytes:
    """A plain client with a DUID-LL (dhclient, systemd-networkd with duid-type link-layer)."""
    return _build(kind, DHCP6OptClientId(duid=DUID_LL(lladdr=mac)), DHCP6OptIA_NA(iaid=IAID),
                  *extra)


def _build(kind, *layers) -> bytes:
    packet = kind(trid=XID)
    for layer in layers:
        packet = packet / layer
    return bytes(packet)


def decode(data: bytes) -> DHCP6:
    """A server message as scapy's class for its type (RELAY-REPL's inner message too)."""
    return getattr(dhcp6, dhcp6_cls_by_type[data[0]])(data)
