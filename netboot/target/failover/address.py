"""The floating portal address on this server: added and announced, or removed.

Announcing matters as much as adding: every client's neighbour table still maps the
address to the dead server's MAC, and Linux would take ~5 s or more to notice
(reachability timeout, then probes). A gratuitous ARP (a request for the address from
the address, broadcast) updates existing entries at once; it is sent a few times,
because an entry confirmed less than ``locktime`` (1 s) ago ignores updates.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import time
from ipaddress import IPv4Interface

from netboot.host import iproute

ANNOUNCE_AT = (0.0, 0.2, 1.0, 2.0)  # seconds after the address is added
_ETH_P_ARP = 0x0806
_SIOCGIFHWADDR = 0x8927
_BROADCAST = b"\xff" * 6


def gratuitous_arp(mac: bytes, address: IPv4Interface) -> bytes:
    """An Ethernet frame: an ARP request for ``address`` from ``address``, to everyone."""
    ip = address.ip.packed
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, ip, b"\0" * 6, ip)
    return _BROADCAST + mac + struct.pack("!H", _ETH_P_ARP) + arp


def _mac(sock: socket.socket, interface: str) -> bytes:
    request = struct.pack("256s", interface.encode())
    return fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, request)[18:24]


def announce(interface: str, address: IPv4Interface) -> None:
    """Send the gratuitous ARPs for ``address`` on ``interface`` (blocks ~2 s)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ARP)) as sock:
        sock.bind((interface, _ETH_P_ARP))
        frame = gratuitous_arp(_mac(sock, interface), address)
        start = time.monotonic()
        for at in ANNOUNCE_AT:
            time.sleep(max(0.0, start + at - time.monotonic()))
            sock.send(frame)


def take(interface: str, address: IPv4Interface) -> None:
    """Add ``address`` to ``interface`` (again is fine), then announce it."""
    iproute.ip("addr", "replace", str(address), "dev", interface)
    announce(interface, address)


def drop(interface: str, address: IPv4Interface) -> None:
    """Remove ``address`` from ``interface``; absent already is fine."""
    if address in iproute.ipv4_addresses(interface):
        iproute.ip("addr", "del", str(address), "dev", interface, check=False)


def holds(interface: str, address: IPv4Interface) -> bool:
    return address in iproute.ipv4_addresses(interface)
