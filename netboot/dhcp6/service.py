"""The DHCPv6 socket loop: receive, decide, send; on any error log, count and go on.

One thread owns the socket (UDP port 547 on the boot interface only, joined to
All_DHCP_Relay_Agents_and_Servers there), its own inventory connection and
the client cache (:class:`netboot.dhcp.directory.ClientDirectory`, shared
with DHCPv4). A reply goes back to where its request came from: a client's
link-local address and port 546, or the relay's address and port 547.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import ClassVar

from netboot.config import Config
from netboot.counters import Sample
from netboot.dhcp.directory import ClientDirectory
from netboot.dhcp.service import RateLimiter, StageWriter, Stats
from netboot.dhcp6.decide import decide
from netboot.dhcp6.options import (
    ALL_RELAY_AGENTS_AND_SERVERS,
    CLIENT_PORT,
    SERVER_PORT,
    MessageType,
)
from netboot.dhcp6.packet import DropReason, Malformed, duid_ll, parse_packet
from netboot.errors import NetbootError
from netboot.host.iproute import interface_mac
from netboot.host.sockets import set_receive_buffer
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory, InventoryFactory
from netboot.log import client_log
from netboot.threads import serve_socket, start_thread

log = logging.getLogger("netboot.dhcp6")

BATCH = 64  # datagrams answered per wake-up of the loop


@dataclass
class Dhcp6Stats(Stats):
    """What the DHCPv6 loop has seen: the counts of DHCPv4's, named dhcp6_*."""

    PREFIX: ClassVar[str] = "dhcp6"
    LABEL: ClassVar[str] = "DHCPv6"


def open_dhcp6_socket(interface: str, port: int = SERVER_PORT) -> socket.socket:
    """A UDP socket on ``port`` that sees and sends only on ``interface``, in the servers'
    multicast group there."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        index = socket.if_nametoindex(interface)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        set_receive_buffer(sock)  # a storm's requests come at once
        sock.bind(("::", port))
        group = socket.inet_pton(socket.AF_INET6, ALL_RELAY_AGENTS_AND_SERVERS)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                        group + struct.pack("@I", index))
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise NetbootError(f"cannot listen for DHCPv6 on {interface} port {port}: "
                           f"{err.strerror or err}") from None
    return sock


class Dhcp6Engine:
    """Everything between a received datagram and the datagram to send back, with the
    state it needs (client cache, counters) but no socket."""

    def __init__(self, config: Config, inventory: Inventory, server_duid: bytes,
                 record_stage: Callable[[str, Stage, float], None] | None = None) -> None:
        self.config = config
        self.inventory = inventory
        self.server_duid = server_duid
        self.record_stage = record_stage or inventory.record_stage
        self.clients = ClientDirectory(inventory)
        self.limiter = RateLimiter()
        self.stats = Dhcp6Stats()

    def handle(self, data: bytes, source: IPv6Address, now: float) -> bytes | None:
        """The reply to send back to ``source`` for ``data``, or None. Malformed packets and
        senders over their rate are counted."""
        self.stats.received += 1
        if not self.limiter.allow(str(source), now):
            self._drop(DropReason.RATE_LIMITED, f"{source} is over its rate")
            return None
        try:
            message = parse_packet(data, source)
        except Malformed as err:
            self._drop(err.reason, f"from {source}: {err.detail}")
            return None
        self.clients.tick(now)
        decision = decide(message, self.config, self.clients, self.server_duid)
        if decision.drop is not None:
            self._drop(decision.drop, decision.note)
            return None
        if decision.stage is not None and decision.mac is not None:
            self.record_stage(decision.mac, decision.stage, now)
        if decision.warning:
            level = logging.WARNING
        elif message.message_type is MessageType.SOLICIT:  # as DHCPv4's DISCOVER: every boot
            level = logging.DEBUG
        else:
            level = logging.INFO
        client_log(log, decision.mac or str(source)).log(
            level, "%s xid %s: %s", message.message_type.name, message.xid.hex(), decision.note)
        if decision.reply is None:
            self.stats.unanswered += 1
            return None
        self.stats.replied += 1
        return decision.reply

    def _drop(self, reason: DropReason, detail: str) -> None:
        self.stats.dropped[reason] += 1
        log.debug("dropped (%s) %s", reason, detail)


class Dhcp6Service:
    """``netboot serve``'s DHCPv6: port 547 on the boot interface."""

    name = "dhcp6"

    def __init__(self, config: Config, open_inventory: InventoryFactory) -> None:
        self.config = config
        self.open_inventory = open_inventory
        self.engine: Dhcp6Engine | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._index = 0  # the interface's, for replies to link-local addresses
        self._stages = StageWriter(open_inventory, service=self.name)

    def samples(self) -> list[Sample]:
        return self.engine.stats.samples() if self.engine is not None else []

    def start(self) -> None:
        interface = self.config.server.interface
        mac = interface_mac(interface)
        if mac is None:
            raise NetbootError(f"cannot serve DHCPv6 on {interface}: no such interface")
        self._sock = open_dhcp6_socket(interface)
        self._index = socket.if_nametoindex(interface)
        try:
            inventory = self.open_inventory()
        except Exception as err:
            self._sock.close()
            raise NetbootError(f"DHCPv6 could not start: {err}") from None
        self.engine = Dhcp6Engine(self.config, inventory, duid_ll(mac), self._stages.record)
        self._stages.start()
        self._thread = start_thread(self.name, "dhcp6", self._run)
        log.info("DHCPv6 on %s port %d for %s, server %s", interface, SERVER_PORT,
                 self.config.dhcp6.subnet, self.config.server_ipv6)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._stages.stop()
        if self._sock is not None:
            self._sock.close()
        if self.engine is not None:
            self.engine.inventory.close()
            log.info("DHCPv6 stopped: %s", self.engine.stats.line())

    def _run(self) -> None:
        assert self._sock is not None
        serve_socket(self._sock, self._stop, self._serve_ready)

    def _serve_ready(self) -> None:
        engine, sock = self.engine, self._sock
        assert engine is not None and sock is not None
        for _ in range(BATCH):
            try:
                data, source = sock.recvfrom(65536)
            except BlockingIOError:
                return
            except OSError as err:  # e.g. an ICMP error queued on the socket: not fatal
                log.debug("receive: %s", err)
                return
            host = IPv6Address(source[0].split("%")[0])
            try:
                reply = engine.handle(data, host, time.time())
            except Exception:  # a bug or a full disk must not end DHCPv6 for everyone else
                engine.stats.errors += 1
                log.exception("error answering %d bytes from %s", len(data), host)
                continue
            if reply is None:
                continue
            # a relay sends from port 547 and gets RELAY-REPL there; a client from 546
            port = SERVER_PORT if source[1] == SERVER_PORT else CLIENT_PORT
            try:
                sock.sendto(reply, (str(host), port, 0, self._index))
            except OSError as err:
                engine.stats.errors += 1
                log.warning("sending %d bytes to [%s]:%d failed: %s", len(reply), host, port,
                            err)
