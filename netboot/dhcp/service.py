"""The DHCP socket loop: receive, decide, send; on any error log, count and go on.

One thread owns the sockets, the lease table and its own inventory
connection. Sockets are bound to the boot interface (``SO_BINDTODEVICE``) so
netboot never answers on another network, and allowed to broadcast, since a
client without an address can only be reached by broadcast.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from netboot.config import Config, DhcpMode
from netboot.dhcp.decide import Decision, decide
from netboot.dhcp.directory import ClientDirectory
from netboot.dhcp.leases import LeaseStore, LeaseTable
from netboot.dhcp.options import PXE_PORT, SERVER_PORT, MessageType
from netboot.dhcp.packet import (
    DropReason,
    Malformed,
    Request,
    describe,
    encode_reply,
    parse_request,
)
from netboot.dhcp.prepared import PreparedReplies
from netboot.errors import NetbootError
from netboot.host.iproute import ipv4_addresses
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory, InventoryFactory
from netboot.log import client_log
from netboot.threads import start_thread

log = logging.getLogger("netboot.dhcp")

BATCH = 64  # datagrams answered per wake-up of the loop
UNKNOWN_NOTE_INTERVAL = 60.0  # seconds between inventory notes of one unregistered MAC


class RateLimiter:
    """A token bucket per MAC: ``burst`` messages at once, then ``rate`` per second.
    A flooding client loses its own packets; everyone else keeps their full rate."""

    def __init__(self, rate: float = 10.0, burst: float = 30.0, max_macs: int = 65536) -> None:
        self.rate, self.burst, self.max_macs = rate, burst, max_macs
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, mac: str, now: float) -> bool:
        tokens, last = self._buckets.get(mac, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) >= self.max_macs and mac not in self._buckets:
            self._buckets.clear()  # a storm of MACs: forget everyone rather than grow
        if tokens < 1.0:
            self._buckets[mac] = (tokens, now)
            return False
        self._buckets[mac] = (tokens - 1.0, now)
        return True


@dataclass
class Stats:
    """What the loop has seen; logged when the service stops."""

    received: int = 0
    replied: int = 0
    unanswered: int = 0
    errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        return (f"received {self.received}, replied {self.replied}, unanswered "
                f"{self.unanswered}, errors {self.errors}, dropped: {drops}")


def open_dhcp_socket(interface: str, port: int) -> socket.socket:
    """A UDP socket on ``port`` that sees and sends only on ``interface``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise NetbootError(f"cannot listen for DHCP on {interface} port {port}: "
                           f"{err.strerror or err}") from None
    return sock


class StageWriter:
    """Writes boot stages to the inventory from a thread of its own.

    A commit waits for the disk (the inventory fsyncs), which must not hold up
    the next DHCP reply. Pending stages are kept per MAC, the latest winning,
    so a backlog never grows past the number of clients; ``stop`` writes what
    is left. A stage the inventory already shows for that MAC, recorded less
    than ``interval`` seconds before, is not written again: a PXE ROM's ACK and
    then iPXE's are one step of one boot, while anything recorded in between
    (``loader``, ``failed``...) makes the next ``dhcp`` a new boot, written.
    A commit per ACK would halve the rate the DHCP loop sustains.
    """

    def __init__(self, open_inventory: InventoryFactory, interval: float = 60.0) -> None:
        self.open_inventory = open_inventory
        self.interval = interval
        self._pending: dict[str, tuple[Stage, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, mac: str, stage: Stage, at: float) -> None:
        with self._lock:
            self._pending[mac] = (stage, at)
        self._wake.set()

    def start(self) -> None:
        self._thread = start_thread(DhcpService.name, "dhcp-stages", self._run)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        with self.open_inventory() as inventory:
            while True:
                self._wake.wait()
                self._wake.clear()
                with self._lock:
                    batch, self._pending = self._pending, {}
                for mac, (stage, at) in batch.items():
                    try:
                        self._write(inventory, mac, stage, at)
                    except Exception:  # a locked or full disk: log, keep serving DHCP
                        log.exception("could not record stage %s of %s", stage, mac)
                if self._stop.is_set() and not self._pending:
                    return

    def _write(self, inventory: Inventory, mac: str, stage: Stage, at: float) -> None:
        current = inventory.find(mac)
        if current is None:
            return
        if current.last_stage == stage and current.last_stage_at is not None \
                and 0 <= at - current.last_stage_at < self.interval:
            return
        inventory.record_stage(mac, stage, at)


class DhcpEngine:
    """Everything between a received datagram and the datagram to send back, with the
    state it needs (leases, client cache, counters) but no socket."""

    def __init__(self, config: Config, inventory: Inventory, now: float,
                 record_stage: Callable[[str, Stage, float], None] | None = None) -> None:
        self.config = config
        self.inventory = inventory
        self.record_stage = record_stage or inventory.record_stage
        self.store = LeaseStore(inventory)
        self.leases: LeaseTable = self.store.load(now)
        self.clients = ClientDirectory(inventory)
        self.limiter = RateLimiter()
        self.prepared = PreparedReplies()
        self.stats = Stats()
        self._noted: dict[str, float] = {}

    def handle(self, data: bytes, source: tuple[str, int], local_port: int,
               now: float) -> tuple[bytes, tuple[str, int]] | None:
        """The reply to send for ``data`` and where, or None. Malformed packets are counted."""
        self.stats.received += 1
        try:
            request = parse_request(data, source, local_port)
        except Malformed as err:
            self._drop(err.reason, f"from {source[0]}:{source[1]}: {err.detail}", data)
            return None
        if not self.limiter.allow(request.mac, now):
            self._drop(DropReason.RATE_LIMITED, f"{request.mac} is over its rate", None)
            return None
        self.clients.tick(now)
        client = self.clients.find(request.mac)
        shape = None
        if client is not None and self.config.dhcp.mode is DhcpMode.FULL and \
                request.message_type in (MessageType.DISCOVER, MessageType.REQUEST):
            shape = PreparedReplies.shape(data, request)
            prepared = self.prepared.get(shape, client)
            if prepared is not None:
                decision, encoded = prepared
                self._apply(request, decision, now)
                self.stats.replied += 1
                assert decision.reply is not None
                return PreparedReplies.patch(encoded, data), decision.reply.destination
        decision = decide(request, self.config, self.leases, self.clients, now)
        self._apply(request, decision, now)
        if decision.reply is None:
            self.stats.unanswered += 1
            return None
        self.stats.replied += 1
        encoded = encode_reply(decision.reply)
        if shape is not None and client is not None and not decision.changes and \
                decision.reply.message_type in (MessageType.OFFER, MessageType.ACK):
            self.prepared.put(shape, client, decision, encoded)
        return encoded, decision.reply.destination

    def _drop(self, reason: DropReason, detail: str, data: bytes | None) -> None:
        self.stats.dropped[reason] += 1
        if log.isEnabledFor(logging.DEBUG):
            shown = f" [{describe(data)}]" if data is not None else ""
            log.debug("dropped (%s) %s%s", reason, detail, shown)

    def _apply(self, request: Request, decision: Decision, now: float) -> None:
        """Lease changes to disk then memory (a lease is on disk before its ACK is sent, and a
        failed write leaves neither), the boot stage, the unknown-machine note, the log."""
        for change in decision.changes:
            self.store.save(change, now)
            self.leases.apply(change)
        if decision.stage is not None:
            self.record_stage(request.mac, decision.stage, now)
        clog = client_log(log, request.mac)
        if decision.unknown and now - self._noted.get(request.mac, -1e18) >= \
                UNKNOWN_NOTE_INTERVAL:
            if len(self._noted) >= self.limiter.max_macs:
                self._noted.clear()  # a storm of made-up MACs must not grow memory
            self._noted[request.mac] = now
            arches = request.architectures
            first = self.inventory.note_unknown(
                request.mac, now, request.vendor_class.decode("ascii", "replace") or None,
                arches[0] if arches else None)
            if first:
                clog.info("unregistered machine asks to boot (vendor class %r); "
                          "`netboot client add %s` registers it",
                          request.vendor_class.decode("ascii", "replace"), request.mac)
        if decision.warning:
            level = logging.WARNING
        elif decision.changes or request.message_type is not MessageType.DISCOVER:
            level = logging.INFO
        else:
            level = logging.DEBUG
        clog.log(level, "%s xid %08x: %s", request.message_type.name, request.xid, decision.note)


class DhcpService:
    """``netboot serve``'s DHCP: port 67 (and 4011 in proxy mode) on the boot interface."""

    name = "dhcp"

    def __init__(self, config: Config, open_inventory: InventoryFactory) -> None:
        self.config = config
        self.open_inventory = open_inventory
        self.engine: DhcpEngine | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sockets: list[tuple[socket.socket, int]] = []
        self._stages = StageWriter(open_inventory)

    def start(self) -> None:
        interface = self.config.server.interface
        ports = [SERVER_PORT] + ([PXE_PORT] if self.config.dhcp.mode is DhcpMode.PROXY else [])
        try:
            for port in ports:
                self._sockets.append((open_dhcp_socket(interface, port), port))
        except NetbootError:
            self._close()
            raise
        try:
            self.engine = self._open_engine()
        except Exception as err:
            self._close()
            raise NetbootError(f"DHCP could not start: {err}") from None
        self._stages.start()
        self._thread = start_thread(self.name, "dhcp", self._run)
        log.info("DHCP (%s mode) on %s ports %s", self.config.dhcp.mode, interface,
                 ", ".join(map(str, ports)))
        address = self.config.server.address
        if all(a.ip != address for a in ipv4_addresses(interface)):
            log.warning("server.address %s is not on %s: clients will be told to fetch boot "
                        "files from an address this machine does not answer on", address,
                        interface)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._stages.stop()
        self._close()
        if self.engine is not None:
            log.info("DHCP stopped: %s", self.engine.stats.line())

    def _close(self) -> None:
        for sock, _ in self._sockets:
            sock.close()
        self._sockets.clear()

    def _open_engine(self) -> DhcpEngine:
        inventory = self.open_inventory()
        try:
            return DhcpEngine(self.config, inventory, time.time(), self._stages.record)
        except BaseException:
            inventory.close()
            raise

    def _run(self) -> None:
        assert self.engine is not None
        inventory = self.engine.inventory
        selector = selectors.DefaultSelector()
        for sock, port in self._sockets:
            selector.register(sock, selectors.EVENT_READ, port)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.5):
                    self._serve_ready(key.fileobj, key.data)  # type: ignore[arg-type]
        finally:
            selector.close()
            inventory.close()

    def _serve_ready(self, sock: socket.socket, port: int) -> None:
        """Answer what is queued on ``sock`` (up to a batch, then let the others have a turn):
        one wake-up per burst instead of one per packet."""
        engine = self.engine
        assert engine is not None
        for _ in range(BATCH):
            try:
                data, source = sock.recvfrom(4096)
            except BlockingIOError:
                return
            except OSError as err:  # e.g. an ICMP error queued on the socket: not fatal
                log.debug("receive on port %d: %s", port, err)
                return
            try:
                out = engine.handle(data, source, port, time.time())
            except Exception:  # a bug or a full disk must not end DHCP for everyone else
                engine.stats.errors += 1
                log.exception("error answering %d bytes from %s:%d", len(data), *source)
                continue
            if out is None:
                continue
            try:
                sock.sendto(out[0], out[1])
            except OSError as err:  # a full send buffer or an unreachable relay
                engine.stats.errors += 1
                log.warning("sending %d bytes to %s:%d failed: %s", len(out[0]), *out[1], err)
