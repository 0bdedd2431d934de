"""Answer IPv6 router solicitations on the boot interface: "nothing here", or "ask DHCPv6".

iPXE configures IPv6 after its DHCPv4 ACK and waits about 13 s for a router
advertisement when no router answers. An RA with router lifetime 0 (not a
default router), no prefix and neither the M nor the O flag tells it at once
that there is nothing to configure (RFC 4861 section 4.2), and changes
nothing for any other host. With DHCPv6 (``dhcp6.subnet``) the RA sets the M
flag instead: addresses come from netboot's DHCPv6 (RFC 4861 section 4.2),
and the prefix is announced on-link but not for SLAAC (L set, A clear: RFC
4861 section 4.6.2), so a client knows its DHCPv6 address's subnet. Still
lifetime 0: netboot is no router. Scapy builds the RA; the kernel fills in
the ICMPv6 checksum and the link-local source.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from ipaddress import IPv6Network

from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr

from netboot.errors import NetbootError
from netboot.host.iproute import interface_mac
from netboot.threads import serve_socket, start_thread

log = logging.getLogger("netboot.ra")

ROUTER_SOLICITATION = 133  # RFC 4861 section 4.1
ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
ND_HOP_LIMIT = 255  # RFC 4861 section 6.1.2: anything else is dropped by the receiver
MIN_MULTICAST_INTERVAL = 3.0  # RFC 4861 section 10, MIN_DELAY_BETWEEN_RAS
ICMP6_FILTER = 1  # <netinet/icmp6.h>; the socket module does not name it


def solicitations_only() -> bytes:
    """An ICMP6_FILTER that lets only router solicitations through to the socket
    (RFC 3542 section 3.2: a bit per ICMPv6 type; in Linux a set bit blocks the type)."""
    words = [0xFFFFFFFF] * 8
    words[ROUTER_SOLICITATION >> 5] &= ~(1 << (ROUTER_SOLICITATION & 31))
    return struct.pack("@8I", *words)


def advertisement(mac: str | None, managed: IPv6Network | None = None,
                  lifetime: tuple[int, int] = (3600, 7200)) -> bytes:
    """The RA netboot sends: router lifetime 0; without ``managed`` no flags and no prefix,
    with it the M flag and ``managed`` on-link (``lifetime``: its preferred and valid
    seconds). Checksum left to the kernel."""
    packet = ICMPv6ND_RA(chlim=0, M=int(managed is not None), O=0, routerlifetime=0, cksum=0)
    if mac:
        packet = packet / ICMPv6NDOptSrcLLAddr(lladdr=mac)
    if managed is not None:
        packet = packet / ICMPv6NDOptPrefixInfo(
            prefixlen=managed.prefixlen, prefix=str(managed.network_address), L=1, A=0,
            preferredlifetime=lifetime[0], validlifetime=lifetime[1])
    return bytes(packet)


class RouterAdvertiser:
    """The ``router-advertisements`` service of ``netboot serve``."""

    name = "router-advertisements"

    def __init__(self, interface: str, managed: IPv6Network | None = None,
                 lifetime: tuple[int, int] = (3600, 7200)) -> None:
        self.interface = interface
        self.managed, self.lifetime = managed, lifetime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.answered = 0
        self._last_multicast = float("-inf")

    def start(self) -> None:
        try:
            index = socket.if_nametoindex(self.interface)
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except OSError as err:
            raise NetbootError(f"cannot answer router solicitations on {self.interface}: "
                               f"{err.strerror or err}") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, solicitations_only())
            group = socket.inet_pton(socket.AF_INET6, ALL_ROUTERS) + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ND_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        except OSError as err:
            sock.close()
            raise NetbootError(f"cannot answer router solicitations on {self.interface}: "
                               f"{err.strerror or err}") from None
        self._sock, self._index = sock, index
        self._packet = advertisement(interface_mac(self.interface), self.managed, self.lifetime)
        self._thread = start_thread(self.name, "ra", self._run)
        log.info("answering IPv6 router solicitations on %s%s", self.interface,
                 f" (M flag: DHCPv6 for {self.managed})" if self.managed else "")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        log.info("router advertisements stopped: %d solicitations answered", self.answered)

    def _run(self) -> None:
        assert self._sock is not None
        serve_socket(self._sock, self._stop, self._answer_one)

    def _answer_one(self) -> None:
        """A solicitation from a link-local address is answered to it (RFC 4861 6.2.6
        allows unicast); one from :: (no address yet) to all nodes, at most every 3 s."""
        assert self._sock is not None
        try:
            data, source = self._sock.recvfrom(1500)
            if not data or data[0] != ROUTER_SOLICITATION:
                return
            host = source[0].split("%")[0]
            target = ALL_NODES if host == "::" else host
            now = time.monotonic()
            if target == ALL_NODES:
                if now - self._last_multicast < MIN_MULTICAST_INTERVAL:
                    return
                self._last_multicast = now
            self._sock.sendto(self._packet, (target, 0, 0, self._index))
            self.answered += 1
            log.debug("router advertisement to %s", target)
        except OSError as err:
            log.warning("router advertisement on %s failed: %s", self.interface, err)
