"""The DHCP socket loop: receive, decide, send; on any error log, count and go on.

One thread owns the sockets, the lease table and its own inventory
connection. Sockets are bound to the boot interface (``SO_BINDTODEVICE``) so
netboot never answers on another network, and allowed to broadcast, for a
client that asks for a broadcast reply. A client without an address that does
not is reached by unicast at its MAC (:func:`add_neighbour`), so its answer is
not shown to every machine on the VLAN.
"""

from __future__ import annotations

import fcntl
import logging
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from netboot.config import Config, DhcpMode
from netboot.counters import Kind, Sample
from netboot.dhcp.boot import opens_window
from netboot.dhcp.decide import Decision, decide
from netboot.dhcp.directory import ClientDirectory
from netboot.dhcp.leases import LeaseStore, LeaseTable
from netboot.dhcp.options import CLIENT_PORT, PXE_PORT, SERVER_PORT, MessageType
from netboot.dhcp.packet import (
    BROADCAST,
    DropReason,
    Malformed,
    Request,
    describe,
    encode_reply,
    parse_request,
)
from netboot.dhcp.prepared import XID, Prepared, PreparedReplies
from netboot.errors import NetbootError
from netboot.host.iproute import ipv4_addresses
from netboot.host.sockets import set_receive_buffer
from netboot.inventory.clients import UnknownNote
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory, InventoryFactory
from netboot.inventory.windows import TOKEN_BYTES, BootFile, BootWindow
from netboot.log import client_log
from netboot.threads import start_thread

log = logging.getLogger("netboot.dhcp")

BATCH = 64  # datagrams answered per wake-up of the loop
# Where a boot exchange's reply has the window's script token: as long as a token, so the
# decided reply (kept for the next request of that shape) is patched, not decided again.
TOKEN_SLOT = "0" * (2 * TOKEN_BYTES)
# What a prepared reply is kept for: a registered client's offer or ack, in full mode.
_PREPARED_ASKED = (MessageType.DISCOVER, MessageType.REQUEST)
_PREPARED_ANSWERS = (MessageType.OFFER, MessageType.ACK)
# Seconds the stage writer gathers stages before a write: under load one transaction (and
# one wake-up of its thread, which competes with the loop for the GIL) per 0.2 s, not per
# packet; a stage is on disk well within a second.
STAGE_PAUSE = 0.2
UNKNOWN_NOTE_INTERVAL = 60.0  # seconds between inventory notes of one unregistered MAC
UNKNOWN_NOTE_PAUSE = 1.0  # seconds the notes of unregistered MACs gather between transactions

# A neighbour entry by the BSD ARP ioctl (linux/sockios.h, linux/if_arp.h): struct arpreq is
# the protocol address (a sockaddr_in), the hardware address (a sockaddr), flags, a netmask
# and the device name. ATF_COM: the hardware address is known, no ARP request is sent.
SIOCSARP = 0x8955
ATF_COM = 0x02
ARPHRD_ETHER = 1
ARPREQ = struct.Struct("=H2s4s8sH6s8si16s16s")


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


class TokenBucket:
    """One bucket shared by many senders: ``burst`` messages at once, then ``rate`` per
    second."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._last = burst, float("-inf")

    def allow(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass
class Stats:
    """What a DHCP (or, with another ``PREFIX``/``LABEL``, DHCPv6) loop has seen; logged
    when the service stops."""

    PREFIX: ClassVar[str] = "dhcp"  # of the metric names
    LABEL: ClassVar[str] = "DHCP"  # in their help texts

    received: int = 0
    replied: int = 0
    unanswered: int = 0
    errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def samples(self) -> list[Sample]:
        """The counts as the admin interface's metrics (netboot.counters)."""
        name, label = self.PREFIX, self.LABEL
        return [
            Sample(f"{name}_requests", Kind.COUNTER, f"{label} requests received",
                   self.received),
            Sample(f"{name}_replies", Kind.COUNTER, f"{label} replies sent", self.replied),
            Sample(f"{name}_unanswered", Kind.COUNTER,
                   f"{label} requests decided on and left without a reply", self.unanswered),
            Sample(f"{name}_errors", Kind.COUNTER, f"{label} requests that failed in handling "
                   "or sending", self.errors),
            *self._more_samples(),
            *(Sample(f"{name}_dropped", Kind.COUNTER, f"{label} packets dropped, by reason", n,
                     (("reason", reason),)) for reason, n in sorted(self.dropped.items())),
        ]

    def _more_samples(self) -> list[Sample]:
        return []

    def _more_line(self) -> str:
        return ""

    def line(self) -> str:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        return (f"received {self.received}, replied {self.replied}, unanswered "
                f"{self.unanswered}, errors {self.errors}, {self._more_line()}dropped: {drops}")


@dataclass
class DhcpStats(Stats):
    """DHCPv4's, with the replies that fell back to broadcast."""

    broadcast_fallbacks: int = 0  # unicast to yiaddr failed: the reply went out broadcast

    def _more_samples(self) -> list[Sample]:
        return [Sample("dhcp_broadcast_fallbacks", Kind.COUNTER,
                       "DHCP replies sent broadcast after unicast failed",
                       self.broadcast_fallbacks)]

    def _more_line(self) -> str:
        return f"broadcast fallbacks {self.broadcast_fallbacks}, "


def open_dhcp_socket(interface: str, port: int) -> socket.socket:
    """A UDP socket on ``port`` that sees and sends only on ``interface``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        set_receive_buffer(sock)  # a storm's requests come at once
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise NetbootError(f"cannot listen for DHCP on {interface} port {port}: "
                           f"{err.strerror or err}") from None
    return sock


def add_neighbour(sock: socket.socket, interface: bytes, ip: str, mac: bytes) -> None:
    """Tell the kernel that ``ip`` is at ``mac`` on ``interface``, so a unicast to a client
    that has no address yet (and so answers no ARP) reaches it: what dnsmasq does. The
    entry is an ordinary (stale) one that the kernel re-checks and ages out, not a
    permanent one; one ioctl per reply."""
    request = ARPREQ.pack(socket.AF_INET, b"", socket.inet_aton(ip), b"", ARPHRD_ETHER, mac,
                          b"", ATF_COM, b"", interface)
    fcntl.ioctl(sock.fileno(), SIOCSARP, request)


def record_unknowns(inventory: Inventory, notes: list[UnknownNote], keep: int) -> None:
    """Record ``notes`` in one transaction, keeping the ``keep`` most recent machines, and
    log each machine seen for the first time."""
    vendors = {note.mac: note.vendor_class for note in notes}
    for mac in inventory.note_unknowns(notes, keep):
        client_log(log, mac).info("unregistered machine asks to boot (vendor class %r); "
                                  "`netboot client add %s` registers it", vendors[mac] or "", mac)


Item = TypeVar("Item")


class PendingWriter(Generic[Item]):
    """Writes what the DHCP loop hands it to the inventory from a thread of its own.

    A commit waits for the disk (the inventory fsyncs), which must not hold up the next
    DHCP reply. Pending items are kept per MAC, the latest winning, so a backlog never
    grows past the number of MACs; after each wake-up the thread waits ``pause`` seconds
    for more before writing them; ``stop`` writes what is left.
    """

    thread_name = "dhcp-writer"

    def __init__(self, open_inventory: InventoryFactory, pause: float = 0.0,
                 service: str = "dhcp") -> None:
        self.open_inventory = open_inventory
        self.pause = pause
        self.service = service  # whose death a dead writer thread is
        self._pending: dict[str, Item] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _put(self, mac: str, item: Item) -> None:
        with self._lock:
            self._pending[mac] = item
        if not self._wake.is_set():  # a set() takes the event's lock: one per batch, not item
            self._wake.set()

    def start(self) -> None:
        self._thread = start_thread(self.service, self.thread_name, self._run)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        with self.open_inventory() as inventory:
            while True:
                self._wake.wait()
                self._stop.wait(self.pause)
                self._wake.clear()
                with self._lock:
                    batch, self._pending = self._pending, {}
                if batch:
                    self._write(inventory, batch)
                if self._stop.is_set() and not self._pending:
                    return

    def _write(self, inventory: Inventory, batch: dict[str, Item]) -> None:
        raise NotImplementedError


class UnknownWriter(PendingWriter[UnknownNote]):
    """Notes of unregistered machines, one transaction per ``pause``: a flood of made-up
    MACs costs the disk one commit a second, and the table keeps the ``keep`` most
    recently seen machines."""

    thread_name = "dhcp-unknown"

    def __init__(self, open_inventory: InventoryFactory, keep: int,
                 pause: float = UNKNOWN_NOTE_PAUSE) -> None:
        super().__init__(open_inventory, pause)
        self.keep = keep

    def record(self, note: UnknownNote) -> None:
        self._put(note.mac, note)

    def _write(self, inventory: Inventory, batch: dict[str, UnknownNote]) -> None:
        try:
            record_unknowns(inventory, list(batch.values()), self.keep)
        except Exception:  # a locked or full disk: log, keep serving DHCP
            log.exception("could not record %d unregistered machines", len(batch))


class StageWriter(PendingWriter[tuple[Stage, float]]):
    """Boot stages of registered clients. A stage the inventory already shows for that
    MAC, recorded less than ``interval`` seconds before, is not written again: a PXE ROM's
    ACK and then iPXE's are one step of one boot, while anything recorded in between
    (``loader``, ``failed``...) makes the next ``dhcp`` a new boot, written. Each batch is
    one transaction (:meth:`Inventory.record_stages`): a commit per ACK would halve the
    rate the DHCP loop sustains, and on PostgreSQL a transaction per client more than that.
    """

    thread_name = "dhcp-stages"

    def __init__(self, open_inventory: InventoryFactory, interval: float = 60.0,
                 service: str = "dhcp", pause: float = STAGE_PAUSE) -> None:
        super().__init__(open_inventory, pause, service)
        self.interval = interval

    def record(self, mac: str, stage: Stage, at: float) -> None:
        self._put(mac, (stage, at))

    def _write(self, inventory: Inventory, batch: dict[str, tuple[Stage, float]]) -> None:
        try:
            inventory.record_stages([(mac, stage, at) for mac, (stage, at) in batch.items()],
                                    self.interval)
        except Exception:  # a locked or full disk: log, keep serving DHCP
            log.exception("could not record the stages of %d client(s)", len(batch))


class DhcpEngine:
    """Everything between a received datagram and the datagram to send back, with the
    state it needs (leases, client cache, counters) but no socket.

    With ``boot.tokens`` a registered client's boot exchange (:func:`opens_window`) that
    gets an offer or an ack also opens its boot window, or finds the one its boot already
    has, and the reply names the script with the window's token. On a target netboot
    manages a new window waits for netboot.provisioning.windows to close the client's
    sessions and renew its secrets; otherwise it is ready at once.
    """

    def __init__(self, config: Config, inventory: Inventory, now: float,
                 record_stage: Callable[[str, Stage, float], None] | None = None,
                 record_unknown: Callable[[UnknownNote], None] | None = None) -> None:
        self.config = config
        self.inventory = inventory
        self.record_stage = record_stage or inventory.record_stage
        self.record_unknown = record_unknown or (
            lambda note: record_unknowns(inventory, [note], config.dhcp.unknown_max))
        self.store = LeaseStore(inventory)
        self.leases: LeaseTable = self.store.load(now)
        self.clients = ClientDirectory(inventory)
        self.clients.tick(now)  # before the first request (10,000 clients: ~0.3 s of reading)
        self.limiter = RateLimiter()
        self.unknown_limiter = TokenBucket(config.dhcp.unknown_rate, config.dhcp.unknown_rate)
        self.prepared = PreparedReplies()
        self.stats = DhcpStats()
        self._noted: dict[str, float] = {}

    def handle(self, data: bytes, source: tuple[str, int], local_port: int,
               now: float) -> tuple[bytes, tuple[str, int], bytes | None] | None:
        """The reply to send for ``data``, where, and the client's MAC if the kernel must be
        told where that address is (see :func:`add_neighbour`); or None. Malformed packets,
        and requests over a rate, are counted. A request of a shape answered before (see
        :mod:`netboot.dhcp.prepared`) is not parsed again."""
        self.stats.received += 1
        shape = PreparedReplies.shape(data, source, local_port)
        prepared = self.prepared.get(shape)
        if prepared is not None:
            request = prepared.request
        else:
            try:
                request = parse_request(data, source, local_port)
            except Malformed as err:
                self._drop(err.reason, f"from {source[0]}:{source[1]}: {err.detail}", data)
                return None
        if not self.limiter.allow(request.mac, now):
            self._drop(DropReason.RATE_LIMITED, f"{request.mac} is over its rate", None)
            return None
        self.clients.tick(now)
        if not self.clients.holds(request.mac) and not self.unknown_limiter.allow(now):
            self._drop(DropReason.UNKNOWN_RATE_LIMITED, f"{request.mac}: unregistered MACs "
                       "are over dhcp.unknown_rate", None)
            return None
        client = self.clients.find(request.mac)
        if prepared is not None:
            if prepared.client is client:
                self.prepared.hits += 1
                return self._reply(request, prepared.decision,
                                   PreparedReplies.patch(prepared.encoded, data),
                                   int.from_bytes(data[XID], "big"), prepared.slot, now)
            request = parse_request(data, source, local_port)  # its record changed: decide anew
        boot_exchange = client is not None and self.config.tokens and opens_window(request)
        slot = TOKEN_SLOT if boot_exchange else None
        decision = decide(request, self.config, self.leases, self.clients, now, slot)
        if decision.reply is None:
            self._apply(request, decision, now, request.xid)
            self.stats.unanswered += 1
            return None
        encoded = encode_reply(decision.reply)
        if client is not None and self.config.dhcp.mode is DhcpMode.FULL and \
                request.message_type in _PREPARED_ASKED and not decision.changes and \
                decision.reply.message_type in _PREPARED_ANSWERS:
            self.prepared.put(shape, Prepared(client, request, decision, encoded, slot))
        return self._reply(request, decision, encoded, request.xid, slot, now)

    def _reply(self, request: Request, decision: Decision, encoded: bytes, xid: int,
               slot: str | None, now: float) -> tuple[bytes, tuple[str, int], bytes | None]:
        """Apply an answered decision, and the reply with its window's token, where it goes
        and the MAC the kernel must be told of (see :meth:`handle`)."""
        assert decision.reply is not None
        self._apply(request, decision, now, xid)
        self.stats.replied += 1
        return (self._fill_slot(encoded, decision, request.mac, slot, now),
                decision.reply.destination,
                request.chaddr[:6] if decision.reply.to_chaddr else None)

    def _fill_slot(self, encoded: bytes, decision: Decision, mac: str, slot: str | None,
                   now: float) -> bytes:
        """A boot exchange's reply is decided (and kept as bytes) with :data:`TOKEN_SLOT` in
        the script's URL; an offer or an ack gets the token of the client's window there."""
        if slot is None or decision.reply is None or \
                decision.reply.message_type not in (MessageType.OFFER, MessageType.ACK):
            return encoded
        token = self._window(mac, now).tokens[BootFile.SCRIPT]
        return encoded.replace(slot.encode(), token.encode())

    def _window(self, mac: str, now: float) -> BootWindow:
        """The boot window this exchange belongs to: the boot's own, or a new one."""
        window, new = self.inventory.open_window(mac, now, self.config.boot.window,
                                                 ready=not self.config.target.manage)
        if new:
            client_log(log, mac).info("boot window %d opened for %d s", window.boot_id,
                                      self.config.boot.window)
        return window

    def _drop(self, reason: DropReason, detail: str, data: bytes | None) -> None:
        self.stats.dropped[reason] += 1
        if log.isEnabledFor(logging.DEBUG):
            shown = f" [{describe(data)}]" if data is not None else ""
            log.debug("dropped (%s) %s%s", reason, detail, shown)

    def _apply(self, request: Request, decision: Decision, now: float, xid: int) -> None:
        """Lease changes to disk then memory (a lease is on disk before its ACK is sent, and a
        failed write leaves neither), the boot stage, the unknown-machine note, the log (of
        ``xid``: a prepared reply's request is the first of its shape, with that one's)."""
        for change in decision.changes:
            self.store.save(change, now)
            self.leases.apply(change)
        if decision.stage is not None:
            self.record_stage(request.mac, decision.stage, now)
        if decision.unknown and now - self._noted.get(request.mac, -1e18) >= \
                UNKNOWN_NOTE_INTERVAL:
            if len(self._noted) >= self.limiter.max_macs:
                self._noted.clear()  # a storm of made-up MACs must not grow memory
            self._noted[request.mac] = now
            arches = request.architectures
            self.record_unknown(UnknownNote(
                request.mac, now, request.vendor_class.decode("ascii", "replace") or None,
                arches[0] if arches else None))
        if decision.warning:
            level = logging.WARNING
        elif decision.changes or request.message_type is not MessageType.DISCOVER:
            level = logging.INFO
        else:
            level = logging.DEBUG
        if log.isEnabledFor(level):
            client_log(log, request.mac).log(level, "%s xid %08x: %s",
                                             request.message_type.name, xid, decision.note)


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
        self._unknowns = UnknownWriter(open_inventory, config.dhcp.unknown_max)
        self._interface = config.server.interface.encode()

    def samples(self) -> list[Sample]:
        return self.engine.stats.samples() if self.engine is not None else []

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
        self._unknowns.start()
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
            self._unknowns.stop()
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
            return DhcpEngine(self.config, inventory, time.time(), self._stages.record,
                              self._unknowns.record)
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
            self._send(sock, *out)

    def _send(self, sock: socket.socket, data: bytes, destination: tuple[str, int],
              mac: bytes | None) -> None:
        """Send a reply; one for a client without an address goes to its new address at its
        MAC, or, if the kernel refuses that, by broadcast (counted)."""
        engine = self.engine
        assert engine is not None
        if mac is not None:
            try:
                add_neighbour(sock, self._interface, destination[0], mac)
                sock.sendto(data, destination)
                return
            except OSError as err:
                engine.stats.broadcast_fallbacks += 1
                log.debug("unicast to %s at %s failed (%s): broadcast instead", destination[0],
                          mac.hex(":"), err)
                destination = (str(BROADCAST), CLIENT_PORT)
        try:
            sock.sendto(data, destination)
        except OSError as err:  # a full send buffer or an unreachable relay
            engine.stats.errors += 1
            log.warning("sending %d bytes to %s:%d failed: %s", len(data), *destination, err)
