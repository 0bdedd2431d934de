"""The TFTP server: one thread, one epoll, a port per transfer, a heap of deadlines.

The loop is thin: receive a datagram, hand it to the transfer's state machine
(:func:`netboot.tftp.transfer.step`) with the time, send what it returns.
What it does differently from tftpy's server, each with a test:

- epoll instead of ``select()``: no 1,024-descriptor ceiling; the
  file-descriptor limit is raised to its hard limit at start;
- a session is found from the descriptor that became readable (O(1)), not by
  scanning every session; timeouts sit in a heap with one entry per session
  (:mod:`netboot.tftp.sessions`);
- each transfer has its own port, with a socket connected to the client and
  an unconnected one for everything else: a datagram from a wrong transfer ID
  lands on the second, is answered with error 5, and never reaches the transfer;
- write requests get error 2: the server is read-only;
- a name with a leading ``/`` is taken from the TFTP root, as tftpd-hpa's
  ``--secure`` takes it (GRUB asks for ``/grub/grub.cfg``); HTTP paths are the
  same names with their ``/``;
- one client address holds at most ``max_per_source`` transfers and all of them
  at most ``max_sessions``; a request past either gets error 0 (RFC 1350 has no
  code for "busy"; its message says which) and is counted by reason in ``stats``;
- a peer that never answers gets its first packet resent at most twice
  (:mod:`netboot.tftp.transfer`), and a client's timeout option is capped
  (:mod:`netboot.tftp.options`), so a forged request costs little and briefly;
- blksize is capped at 65464, so no DATA exceeds a UDP datagram (tftpy takes
  65536, and its loop dies of EMSGSIZE); timeout (capped) and windowsize are honoured;
- a malformed datagram is counted and dropped; an exception while handling
  one request is logged and the loop goes on;
- a request for a file whose boot window is still being prepared (a
  pxelinux or GRUB config in a boot storm) waits without blocking the loop:
  it is looked at again on a timer, less and less often, for up to
  ``ready_wait`` seconds; the client's resends of it are ignored meanwhile.

Per block the loop does one epoll_wait, one recv and one send, and as little
Python as it can between them: the ACK a transfer awaits takes the shortcut in
:mod:`netboot.tftp.fastpath`, which also decides when the loop busy-polls
instead of sleeping. Anything else a transfer's client sends is parsed here and
handed to ``step()``.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import math
import resource
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from netboot.boot import urls
from netboot.boot.catalog import (
    READY_POLL,
    READY_WAIT,
    AccessDenied,
    Catalog,
    NotReady,
    next_poll,
)
from netboot.boot.content import BytesSource, FileSource
from netboot.counters import Kind, Sample
from netboot.errors import NotFound
from netboot.host.sockets import set_receive_buffer, steer_by_source
from netboot.inventory.recorder import StageRecorder
from netboot.log import client_log
from netboot.tftp.cache import ContentCache
from netboot.tftp.fastpath import FastPath
from netboot.tftp.options import DEFAULT_LIMITS, Limits, OptionError, negotiate
from netboot.tftp.packets import (
    Ack,
    Error,
    ErrorCode,
    Malformed,
    Opcode,
    Request,
    encode_error,
    parse,
)
from netboot.tftp.sessions import (
    MAX_DATAGRAM,
    Session,
    SessionTable,
    family,
    transfer_sockets,
)
from netboot.tftp.transfer import (
    Illegal,
    Phase,
    Start,
    Tick,
    Transfer,
    awaited_ack,
    new_transfer,
    step,
)
from netboot.threads import start_thread

log = logging.getLogger(__name__)

BURST = 64  # datagrams read from one socket per wake-up, so one busy peer cannot starve others
_RRQ, _WRQ, _ACK = (op.to_bytes(2, "big") for op in (Opcode.RRQ, Opcode.WRQ, Opcode.ACK))
MODES = ("octet",)  # boot files are binary; netascii would change their bytes
# The keys of TftpServer.stats, by what they count (the admin interface's metrics).
TRANSFER_OUTCOMES = ("done", "failed", "unanswered")
REFUSALS = frozenset({"malformed", "wrong_tid", "write_refused", "mode_refused", "not_found",
                      "denied", "bad_options", "source_busy", "busy"})
ERRORS = frozenset({"send_errors", "internal_errors"})


@dataclass(frozen=True)
class Waiting:
    """A request whose boot window is still being prepared, and until when it may wait."""

    request: Request
    until: float  # monotonic: then it is refused
    pause: float  # seconds before the next look


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class TftpServer:
    """A :class:`~netboot.serve.service.Service` serving a :class:`Catalog` over TFTP."""

    name = "tftp"

    def __init__(self, address: IPv4Address | IPv6Address, port: int, catalog: Catalog,
                 stages: StageRecorder | None = None, limits: Limits = DEFAULT_LIMITS,
                 max_sessions: int = 10000, max_per_source: int = 8,
                 workers: int = 1, ready_wait: float = READY_WAIT) -> None:
        self.address = address
        self.port = port
        self.catalog = catalog
        self.stages = stages
        self.limits = limits
        self.max_sessions = max_sessions
        self.max_per_source = max_per_source  # sessions one client IP may hold at once
        self.workers = workers  # processes sharing the port, each client address steered to one
        self.ready_wait = ready_wait  # seconds a request may wait for its boot window
        self.cache = ContentCache()
        # What became of each datagram and transfer: done, failed, unanswered, and each
        # refusal by reason (malformed, wrong_tid, write_refused, mode_refused, not_found,
        # denied, bad_options, source_busy, busy), and the loop's own (send_errors,
        # internal_errors, spin_misses) and the bytes sent; logged when the server stops.
        # Every key is there from the start, so the counter never grows while
        # samples() copies it from another thread.
        self.stats: Counter[str] = Counter(dict.fromkeys(
            (*TRANSFER_OUTCOMES, *REFUSALS, *ERRORS, "spin_misses", "bytes"), 0))
        self._table = SessionTable()
        # Requests waiting for their boot window, by client address, and when to look again
        # (a heap; an entry whose request no longer waits, or waits anew, is skipped).
        self._waiting: dict[tuple[str, int], Waiting] = {}
        self._looks: list[tuple[float, int, tuple[str, int], Waiting]] = []
        self._order = itertools.count()
        self._fast = FastPath(self._table.by_peer, self.stats, self._on_datagram, self._apply,
                              self._send_failed)
        self._epoll: select.epoll | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def samples(self) -> list[Sample]:
        """The counts as the admin interface's metrics (netboot.counters)."""
        counts = dict(self.stats)
        return [
            *(Sample("tftp_transfers", Kind.COUNTER, "TFTP transfers ended, by outcome",
                     counts.get(outcome, 0), (("outcome", outcome),))
              for outcome in TRANSFER_OUTCOMES),
            Sample("tftp_sent_bytes", Kind.COUNTER, "Bytes of files acknowledged by TFTP "
                   "clients", counts.get("bytes", 0)),
            *(Sample("tftp_refused", Kind.COUNTER, "TFTP datagrams or requests refused, by "
                     "reason", n, (("reason", what),))
              for what, n in sorted(counts.items()) if what in REFUSALS),
            *(Sample("tftp_errors", Kind.COUNTER, "TFTP sends or handlings that failed, by "
                     "kind", n, (("kind", what),))
              for what, n in sorted(counts.items()) if what in ERRORS),
            Sample("tftp_transfers_in_flight", Kind.GAUGE, "TFTP transfers in flight",
                   len(self._table.by_peer)),
            Sample("tftp_requests_waiting", Kind.GAUGE, "TFTP requests waiting for their "
                   "boot window to be prepared", len(self._waiting)),
        ]

    @property
    def sessions(self) -> dict[tuple[str, int], Session]:
        """The transfers in flight, by client address."""
        return self._table.by_peer

    # -- service ---------------------------------------------------------------------

    def start(self) -> None:
        limit = raise_fd_limit()
        # A transfer holds three descriptors (two sockets, the file); keep some for the rest.
        self.max_sessions = min(self.max_sessions, (limit - 128) // 3)
        self._sock = socket.socket(family(self.address), socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.workers > 1:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        set_receive_buffer(self._sock)
        self._sock.bind((str(self.address), self.port))
        if self.workers > 1:  # so max_per_source holds between the workers, not per worker
            steer_by_source(self._sock, self.workers)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._epoll = select.epoll()
        self._epoll.register(self._sock.fileno(), select.EPOLLIN)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self._thread = start_thread(self.name, "tftp", self._run)
        log.info("TFTP on %s:%d, root %s", self.address, self.port,
                 self.catalog.config.tftp_root_path)

    def stop(self) -> None:
        self._stopping = True
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join()
        for session in list(self.sessions.values()):
            self._close(session)
        assert self._epoll is not None
        self._epoll.close()
        for sock in (self._sock, self._wake_r, self._wake_w):
            sock.close()
        log.info("TFTP on %s:%d stopped: %s", self.address, self.port,
                 ", ".join(f"{n} {what}" for what, n in sorted(self.stats.items()) if n) or "idle")

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        assert self._epoll is not None
        poll, by_fd, timers, looks = (self._epoll.poll, self._table.by_fd, self._table.timers,
                                      self._looks)
        fast = self._fast
        serve = fast.serve
        requests, wake = self._sock.fileno(), self._wake_r.fileno()
        while not self._stopping:
            if fast.spinner is not None:  # busy-poll for a lone transfer's ACK (FastPath)
                events = poll(0)
                if not events:
                    if time.monotonic() < fast.spin_until:
                        continue
                    fast.missed()
                    continue
            else:
                wait = -1.0
                if timers or looks:
                    due = timers[0][0] if timers else math.inf
                    if looks and looks[0][0] < due:
                        due = looks[0][0]
                    wait = due - time.monotonic()
                    wait = 1.0 if wait > 1.0 else 0.0 if wait < 0.0 else wait
                events = poll(wait)
            now = time.monotonic()
            for fd, _ in events:
                try:
                    entry = by_fd.get(fd)
                    if entry is not None:
                        if entry[1]:
                            self._answer_stray(entry[0])
                        else:
                            serve(entry[0], now)
                    elif fd == requests:
                        self._serve_requests()
                    elif fd == wake:
                        self._wake_r.recv(64)
                except Exception:  # a bug in one transfer must not stop the server
                    self.stats["internal_errors"] += 1
                    log.exception("TFTP: unexpected error; the loop goes on")
            if timers and timers[0][0] <= now:
                self._fire_timers(now)
            if looks and looks[0][0] <= now:
                self._look_again(now)

    def _fire_timers(self, now: float) -> None:
        for session in self._table.due(now):
            self._advance(session, Tick(), now)
            if not session.closed:
                self._table.schedule(session)

    def _look_again(self, now: float) -> None:
        """Try again each waiting request whose time to look has come."""
        while self._looks and self._looks[0][0] <= now:
            _, _, peer, waiting = heapq.heappop(self._looks)
            if self._waiting.get(peer) is not waiting:
                continue  # answered, replaced by another request, or waiting anew
            del self._waiting[peer]
            try:
                self._open(waiting.request, peer, waiting)
            except Exception:
                self.stats["internal_errors"] += 1
                log.exception("TFTP: unexpected error on a request from %s", peer[0])

    def _serve_requests(self) -> None:
        for _ in range(BURST):
            try:
                data, peer = self._sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            try:
                self._request(data, peer)
            except Exception:
                self.stats["internal_errors"] += 1
                log.exception("TFTP: unexpected error on a request from %s", peer[0])

    def _on_datagram(self, session: Session, data: bytes, now: float) -> None:
        """A datagram of the transfer other than the ACK it awaits (that one takes the
        fast path): parsed, and handed to ``step()``."""
        if len(data) == 4 and data[:2] == _ACK:
            event = Ack(int.from_bytes(data[2:], "big"))
        else:
            try:
                packet = parse(data)
            except Malformed:
                self.stats["malformed"] += 1
                return
            if isinstance(packet, Ack | Error):
                event = packet
            else:
                event = Illegal(f"unexpected {getattr(packet, 'opcode', '?')!s} during a read")
        self._advance(session, event, now)

    def _answer_stray(self, session: Session) -> None:
        """RFC 1350 section 4: answer a datagram from a wrong transfer ID, leave the transfer."""
        try:
            _, peer = session.stray.recvfrom(MAX_DATAGRAM)
        except OSError:
            return
        self.stats["wrong_tid"] += 1
        with contextlib.suppress(OSError):
            session.stray.sendto(encode_error(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), peer)

    # -- requests --------------------------------------------------------------------

    def _request(self, data: bytes, peer: tuple[str, int]) -> None:
        try:
            packet = parse(data)
        except Malformed as err:
            self.stats["malformed"] += 1
            log.debug("dropped a malformed datagram from %s: %s", peer[0], err)
            if data[:2] in (_RRQ, _WRQ):  # tell a client why its request went unanswered
                self._refuse(peer, ErrorCode.ILLEGAL_OPERATION, f"malformed request: {err}")
            return
        if not isinstance(packet, Request):  # an ACK, ERROR or DATA for no transfer of ours
            self.stats["wrong_tid"] += 1
            if not isinstance(packet, Error):  # never answer an error with an error
                self._refuse(peer, ErrorCode.UNKNOWN_TID, "unknown transfer ID")
            return
        if packet.opcode is Opcode.WRQ:
            self.stats["write_refused"] += 1
            log.warning("refused a write of %r from %s: netboot's TFTP is read-only",
                        packet.filename, peer[0])
            self._refuse(peer, ErrorCode.ACCESS_VIOLATION, "read-only server")
            return
        if packet.mode not in MODES:
            self.stats["mode_refused"] += 1
            self._refuse(peer, ErrorCode.ILLEGAL_OPERATION,
                         f"mode {packet.mode} not served; use octet (binary)")
            return
        waiting = self._waiting.get(peer)
        if waiting is not None:
            if waiting.request == packet:
                return  # the client asked again; its look on the timer answers it
            del self._waiting[peer]  # it asks for something else now
        existing = self.sessions.get(peer)
        if existing is not None:
            if existing.request == packet:
                return  # the client sent its request again; that transfer's timer answers it
            # A new request from the same port: the client has given the old transfer up
            # (PXE ROMs ask once for tsize, then again for the file, often without an ERROR).
            asked = urls.redact(packet.filename)
            existing.transfer = existing.transfer._replace(
                phase=Phase.FAILED, reason=f"the client asked for {asked!r} instead")
            self._finish(existing, time.monotonic(), logging.INFO)
        if self._table.per_source.get(peer[0], 0) >= self.max_per_source:
            self.stats["source_busy"] += 1
            self._refuse(peer, ErrorCode.NOT_DEFINED, "too many transfers from your address")
            return
        if len(self.sessions) + len(self._waiting) >= self.max_sessions:
            self.stats["busy"] += 1
            self._refuse(peer, ErrorCode.NOT_DEFINED, "server busy, try again")
            return
        self._open(packet, peer)

    def _open(self, request: Request, peer: tuple[str, int],
              waited: Waiting | None = None) -> None:
        """Start the transfer ``request`` asks for, or refuse it, or (its boot window being
        prepared) let it wait; ``waited``: how it waited so far."""
        ip = ip_address(peer[0])
        try:
            content = self.catalog.open(request.filename.lstrip("/"), ip, wait=0)
        except NotReady as err:
            now = time.monotonic()
            if waited is not None and now >= waited.until:
                self.stats["denied"] += 1
                log.warning("refused %r to %s after %.0f s: %s", urls.redact(request.filename),
                            ip, self.ready_wait, err)
                self._refuse(peer, ErrorCode.ACCESS_VIOLATION, "access violation")
                return
            waiting = (Waiting(request, now + self.ready_wait, READY_POLL) if waited is None
                       else Waiting(request, waited.until, next_poll(waited.pause)))
            self._waiting[peer] = waiting
            heapq.heappush(self._looks, (min(now + waiting.pause, waiting.until),
                                         next(self._order), peer, waiting))
            return
        except NotFound:
            self.stats["not_found"] += 1
            log.info("no file %r for %s", urls.redact(request.filename), ip)
            self._refuse(peer, ErrorCode.FILE_NOT_FOUND, "file not found")
            return
        except AccessDenied as err:
            self.stats["denied"] += 1
            log.warning("refused %r to %s: %s", urls.redact(request.filename), ip, err)
            self._refuse(peer, ErrorCode.ACCESS_VIOLATION, "access violation")
            return
        try:
            negotiated = negotiate(request.options, content.size, self.limits)
        except OptionError as err:
            content.close()
            self.stats["bad_options"] += 1
            self._refuse(peer, ErrorCode.BAD_OPTIONS, str(err))
            return
        source = content.source
        datagrams = None
        if isinstance(source, FileSource):
            source = self.cache.load(source) or source
            if isinstance(source, BytesSource):
                datagrams = self.cache.datagrams(source, negotiated.blksize)
        try:
            sock, stray = transfer_sockets(self.address, peer)  # a new port: the transfer ID
        except OSError:
            content.close()
            raise
        now = time.monotonic()
        session = Session(sock, stray, peer, request, content,
                          new_transfer(source, negotiated, self.limits, datagrams), now)
        assert self._epoll is not None
        self._table.add(session, self._epoll)
        if content.stage is not None and content.mac is not None and self.stages is not None:
            self.stages.record(content.mac, content.stage)
        self._advance(session, Start(), now)
        if not session.closed:
            self._table.schedule(session)

    # -- sending and finishing ---------------------------------------------------------

    def _advance(self, session: Session, event, now: float) -> None:
        self._apply(session, *step(session.transfer, event, now), now)

    def _apply(self, session: Session, transfer: Transfer, packets: list[bytes],
               now: float) -> None:
        """Take the transfer's new state, send its packets, finish it if it has ended."""
        session.transfer = transfer
        session.awaited = awaited_ack(transfer)
        send = session.sock.send
        for packet in packets:
            try:
                send(packet)
            except OSError as err:  # a full buffer is a lost datagram: the timer resends it
                self._send_failed(session.peer, err)
        if transfer.phase is not Phase.SENDING:
            self._finish(session, now)

    def _send_failed(self, peer: tuple[str, int], err: OSError) -> None:
        self.stats["send_errors"] += 1
        if err.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ECONNREFUSED):
            log.debug("send to %s failed: %s", peer[0], err)

    def _refuse(self, peer: tuple[str, int], code: ErrorCode, message: str) -> None:
        try:
            self._sock.sendto(encode_error(code, message), peer)
        except OSError as err:
            self._send_failed(peer, err)

    def _finish(self, session: Session, now: float, level: int = logging.WARNING) -> None:
        """Log the transfer's line (file, client, bytes, seconds, rate) and let it go."""
        t = session.transfer
        seconds = max(now - session.started, 1e-6)
        sent = t.bytes_acked
        self.stats["bytes"] += sent
        logger = client_log(log, session.content.mac) if session.content.mac else log
        where = f"{session.content.name} to {session.peer[0]}"
        if t.phase is Phase.DONE:
            self.stats["done"] += 1
            logger.info("sent %s: %d bytes in %.3f s (%.1f MB/s, blksize %d, window %d)",
                        where, sent, seconds, sent / seconds / 1e6, t.plan.blksize,
                        t.plan.windowsize)
        elif t.phase is Phase.UNANSWERED:  # perhaps a forged source: counted, not a warning
            self.stats["unanswered"] += 1
            logger.debug("dropped %s: %s", where, t.reason)
        else:
            self.stats["failed"] += 1
            logger.log(level, "gave up %s after %d of %d bytes in %.3f s: %s", where, sent,
                       session.content.size, seconds, t.reason)
        self._close(session)

    def _close(self, session: Session) -> None:
        self._fast.forget(session)
        self._table.close(session, self._epoll)
