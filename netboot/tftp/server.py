"""The TFTP server: one thread, one epoll, a socket per transfer, a heap of deadlines.

The loop is thin: receive a datagram, hand it to the transfer's state machine
(:func:`netboot.tftp.transfer.step`) with the time, send what it returns.
What it does differently from tftpy's server, each with a test:

- ``selectors`` (epoll) instead of ``select()``: no 1,024-descriptor ceiling;
  the file-descriptor limit is raised to its hard limit at start;
- a session is found from the socket that became readable (O(1)), not by
  scanning every session; timeouts sit in a heap with one entry per session;
- a datagram from the wrong transfer ID gets error 5 and is not processed;
- write requests get error 2: the server is read-only;
- blksize is capped at 65464, so no DATA exceeds a UDP datagram (tftpy's
  65536 killed its loop with EMSGSIZE); timeout and windowsize are honoured;
- a malformed datagram is counted and dropped; an exception while handling
  one request is logged and the loop goes on.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address

from netboot.catalog import AccessDenied, Catalog, Content
from netboot.errors import NotFound
from netboot.log import client_log
from netboot.stages import StageRecorder
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
from netboot.tftp.transfer import Illegal, Phase, Start, Tick, Transfer, new_transfer, step

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65536
BURST = 64  # datagrams read from one socket per wake-up, so one busy peer cannot starve others
_RRQ, _WRQ = Opcode.RRQ.to_bytes(2, "big"), Opcode.WRQ.to_bytes(2, "big")
MODES = ("octet",)  # boot files are binary; netascii would change their bytes
# Room for ~8,000 requests queued on the well-known port (the default holds ~270).
REQUEST_BUFFER = 8 << 20
SO_RCVBUFFORCE = 33  # Linux asm-generic/socket.h; Python's socket module does not name it


@dataclass(eq=False)
class Session:
    """One transfer in flight: its own socket (its transfer ID), peer and state."""

    sock: socket.socket
    peer: tuple[str, int]
    content: Content
    transfer: Transfer
    started: float
    closed: bool = False


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Past net.core.rmem_max if we may (root): a boot storm's requests arrive at once."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class TftpServer:
    """A :class:`~netboot.server.Service` serving a :class:`Catalog` over TFTP."""

    name = "tftp"

    def __init__(self, address: IPv4Address, port: int, catalog: Catalog,
                 stages: StageRecorder | None = None, limits: Limits = DEFAULT_LIMITS,
                 max_sessions: int = 10000) -> None:
        self.address = address
        self.port = port
        self.catalog = catalog
        self.stages = stages
        self.limits = limits
        self.max_sessions = max_sessions
        self.stats: Counter[str] = Counter()  # malformed, wrong_tid, denied, done...
        self.sessions: dict[tuple[str, int], Session] = {}
        self._timers: list[tuple[float, int, Session]] = []
        self._seq = itertools.count()
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- service ---------------------------------------------------------------------

    def start(self) -> None:
        limit = raise_fd_limit()
        # A transfer holds two descriptors (socket and file); keep some for the rest.
        self.max_sessions = min(self.max_sessions, (limit - 128) // 2)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        set_receive_buffer(self._sock, REQUEST_BUFFER)
        self._sock.bind((str(self.address), self.port))
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        self._thread = threading.Thread(target=self._run, name="tftp", daemon=True)
        self._thread.start()
        log.info("TFTP on %s:%d, root %s", self.address, self.port,
                 self.catalog.config.server.tftp_root)

    def stop(self) -> None:
        self._stopping = True
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join()
        for session in list(self.sessions.values()):
            self._close(session)
        assert self._selector is not None
        self._selector.close()
        for sock in (self._sock, self._wake_r, self._wake_w):
            sock.close()

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        assert self._selector is not None
        while not self._stopping:
            wait = None
            if self._timers:
                wait = min(1.0, max(0.0, self._timers[0][0] - time.monotonic()))
            for key, _ in self._selector.select(wait):
                try:
                    if key.data is None:
                        self._serve_requests()
                    elif isinstance(key.data, Session):
                        self._serve_session(key.data)
                    else:
                        self._wake_r.recv(64)
                except Exception:  # a bug in one transfer must not stop the server
                    self.stats["internal_errors"] += 1
                    log.exception("TFTP: unexpected error; the loop goes on")
            self._fire_timers(time.monotonic())

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, session = heapq.heappop(timers)
            if session.closed:
                continue
            if session.transfer.deadline > now:  # progress since: sleep till the new deadline
                heapq.heappush(timers, (session.transfer.deadline, next(self._seq), session))
                continue
            self._advance(session, Tick(), now)
            if not session.closed:
                heapq.heappush(timers, (session.transfer.deadline, next(self._seq), session))

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

    def _serve_session(self, session: Session) -> None:
        for _ in range(BURST):
            if session.closed:
                return
            try:
                data, peer = session.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error surfacing; the timer will resend or give up
                continue
            if peer != session.peer:
                # RFC 1350 section 4: answer the stranger, leave the transfer alone.
                self.stats["wrong_tid"] += 1
                self._send(session.sock, encode_error(ErrorCode.UNKNOWN_TID,
                                                      "unknown transfer ID"), peer)
                continue
            try:
                packet = parse(data)
            except Malformed:
                self.stats["malformed"] += 1
                continue
            if isinstance(packet, Ack | Error):
                event = packet
            else:
                event = Illegal(f"unexpected {getattr(packet, 'opcode', '?')!s} during a read")
            self._advance(session, event, time.monotonic())

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
        if not isinstance(packet, Request):
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
            self._refuse(peer, ErrorCode.ILLEGAL_OPERATION,
                         f"mode {packet.mode} not served; use octet (binary)")
            return
        existing = self.sessions.get(peer)
        if existing is not None:
            return  # the client sent its request again; that transfer's timer answers it
        if len(self.sessions) >= self.max_sessions:
            self.stats["busy"] += 1
            self._refuse(peer, ErrorCode.NOT_DEFINED, "server busy, try again")
            return
        self._open(packet, peer)

    def _open(self, request: Request, peer: tuple[str, int]) -> None:
        ip = IPv4Address(peer[0])
        try:
            content = self.catalog.open(request.filename, ip)
        except NotFound:
            self.stats["not_found"] += 1
            log.info("no file %r for %s", request.filename, ip)
            self._refuse(peer, ErrorCode.FILE_NOT_FOUND, "file not found")
            return
        except AccessDenied as err:
            self.stats["denied"] += 1
            log.warning("refused %r to %s: %s", request.filename, ip, err)
            self._refuse(peer, ErrorCode.ACCESS_VIOLATION, "access violation")
            return
        try:
            negotiated = negotiate(request.options, content.size, self.limits)
        except OptionError as err:
            content.close()
            self.stats["bad_options"] += 1
            self._refuse(peer, ErrorCode.BAD_OPTIONS, str(err))
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((str(self.address), 0))  # a new port: this transfer's ID
            sock.setblocking(False)
        except OSError:
            sock.close()
            content.close()
            raise
        now = time.monotonic()
        session = Session(sock, peer, content, new_transfer(content.source, negotiated,
                                                              self.limits), now)
        self.sessions[peer] = session
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ, session)
        if content.stage is not None and content.mac is not None and self.stages is not None:
            self.stages.record(content.mac, content.stage)
        self._advance(session, Start(), now)
        if not session.closed:
            heapq.heappush(self._timers, (session.transfer.deadline, next(self._seq), session))

    # -- sending and finishing ---------------------------------------------------------

    def _advance(self, session: Session, event, now: float) -> None:
        session.transfer, packets = step(session.transfer, event, now)
        for packet in packets:
            self._send(session.sock, packet, session.peer)
        if session.transfer.finished:
            self._finish(session, now)

    def _send(self, sock: socket.socket, packet: bytes, peer: tuple[str, int]) -> None:
        try:
            sock.sendto(packet, peer)
        except OSError as err:  # a full buffer is a lost datagram: the timer resends it
            self.stats["send_errors"] += 1
            if err.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ECONNREFUSED):
                log.debug("send to %s failed: %s", peer[0], err)

    def _refuse(self, peer: tuple[str, int], code: ErrorCode, message: str) -> None:
        self._send(self._sock, encode_error(code, message), peer)

    def _finish(self, session: Session, now: float) -> None:
        t = session.transfer
        seconds = max(now - session.started, 1e-6)
        sent = t.bytes_acked
        logger = client_log(log, session.content.mac) if session.content.mac else log
        where = f"{session.content.name} to {session.peer[0]}"
        if t.phase is Phase.DONE:
            self.stats["done"] += 1
            logger.info("sent %s: %d bytes in %.3f s (%.1f MB/s, blksize %d, window %d)",
                        where, sent, seconds, sent / seconds / 1e6, t.plan.blksize,
                        t.plan.windowsize)
        else:
            self.stats["failed"] += 1
            logger.warning("gave up %s after %d of %d bytes in %.3f s: %s", where, sent,
                           session.content.size, seconds, t.reason)
        self._close(session)

    def _close(self, session: Session) -> None:
        if session.closed:
            return
        session.closed = True
        if self.sessions.get(session.peer) is session:
            del self.sessions[session.peer]
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(session.sock)
        session.sock.close()
        session.content.close()
