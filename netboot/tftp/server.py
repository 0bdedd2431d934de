"""The TFTP server: one thread, one epoll, a port per transfer, a heap of deadlines.

The loop is thin: receive a datagram, hand it to the transfer's state machine
(:func:`netboot.tftp.transfer.step`) with the time, send what it returns.
What it does differently from tftpy's server, each with a test:

- epoll instead of ``select()``: no 1,024-descriptor ceiling; the
  file-descriptor limit is raised to its hard limit at start;
- a session is found from the descriptor that became readable (O(1)), not by
  scanning every session; timeouts sit in a heap with one entry per session;
- each transfer's port (its transfer ID) has two sockets: one connected to the
  client, which the kernel gives only the client's datagrams and which sends
  without a route lookup per block (twice as cheap as ``sendto``), and one
  unconnected, which gets everything else: a datagram from a wrong transfer
  ID lands there, is answered with error 5, and never reaches the transfer;
- write requests get error 2: the server is read-only;
- blksize is capped at 65464, so no DATA exceeds a UDP datagram (tftpy's
  65536 killed its loop with EMSGSIZE); timeout and windowsize are honoured;
- a malformed datagram is counted and dropped; an exception while handling
  one request is logged and the loop goes on.

Per block the loop does one epoll_wait, one recv and one send, and as little
Python as it can between them: the datagram is compared with the ACK the
transfer awaits (:func:`~netboot.tftp.transfer.awaited_ack`) and, if equal,
the next block comes from :func:`~netboot.tftp.transfer.advance` with no
parsing; anything else (a duplicate or old ACK, an ERROR, garbage) is parsed
and handed to ``step()``. A wrong transfer ID never gets that far: the
kernel delivers it to the stray socket.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import resource
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address

from netboot.boot.catalog import AccessDenied, Catalog, Content
from netboot.boot.content import BytesSource, FileSource
from netboot.errors import NotFound
from netboot.inventory.recorder import StageRecorder
from netboot.log import client_log
from netboot.tftp.cache import ContentCache
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
from netboot.tftp.transfer import (
    Illegal,
    Phase,
    Start,
    Tick,
    Transfer,
    advance,
    awaited_ack,
    new_transfer,
    step,
)

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65536
BURST = 64  # datagrams read from one socket per wake-up, so one busy peer cannot starve others
SPIN_SECONDS = 200e-6  # the loop busy-polls this long for a lone transfer's ACK (_spin_for)
SPIN_MISSES = 8  # ACKs that missed the spin window, after which a transfer is not spun for
_RRQ, _WRQ, _ACK = (op.to_bytes(2, "big") for op in (Opcode.RRQ, Opcode.WRQ, Opcode.ACK))
MODES = ("octet",)  # boot files are binary; netascii would change their bytes
# Room for ~8,000 requests queued on the well-known port (the default holds ~270).
REQUEST_BUFFER = 8 << 20
SO_RCVBUFFORCE = 33  # Linux asm-generic/socket.h; Python's socket module does not name it


@dataclass(eq=False)
class Session:
    """One transfer in flight: its port's two sockets, its peer and its state."""

    sock: socket.socket  # connected to the peer: the transfer's datagrams, both ways
    stray: socket.socket  # same port, unconnected: datagrams from anyone else
    peer: tuple[str, int]
    request: Request
    content: Content
    transfer: Transfer
    started: float
    closed: bool = False
    awaited: bytes | None = None  # the ACK that lets the fast path send the next window
    spin_misses: int = 0  # times its ACK did not come within a spin (see TftpServer._spin_for)


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


def transfer_sockets(address: IPv4Address, peer: tuple[str, int]) -> tuple[socket.socket,
                                                                          socket.socket]:
    """A new port for one transfer: (connected to ``peer``, unconnected for strays).

    The first socket binds port 0 WITHOUT SO_REUSEADDR: with it, Linux may pick a port
    that other SO_REUSEADDR sockets hold (another transfer's, or the request port
    itself, which then loses requests to this transfer's stray socket). Reuse is
    allowed only afterwards, for the connected twin on the same port.
    """
    stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stray.bind((str(address), 0))
        for s in (stray, sock):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setblocking(False)
        sock.bind(stray.getsockname())
        sock.connect(peer)  # the kernel now prefers it for the peer's datagrams
    except OSError:
        stray.close()
        sock.close()
        raise
    return sock, stray


class TftpServer:
    """A :class:`~netboot.serve.service.Service` serving a :class:`Catalog` over TFTP."""

    name = "tftp"

    def __init__(self, address: IPv4Address, port: int, catalog: Catalog,
                 stages: StageRecorder | None = None, limits: Limits = DEFAULT_LIMITS,
                 max_sessions: int = 10000, reuse_port: bool = False) -> None:
        self.address = address
        self.port = port
        self.catalog = catalog
        self.stages = stages
        self.limits = limits
        self.max_sessions = max_sessions
        self.reuse_port = reuse_port  # several worker processes share the port
        self.cache = ContentCache()
        self.stats: Counter[str] = Counter()  # done, failed, denied, malformed, wrong_tid...
        self.sessions: dict[tuple[str, int], Session] = {}
        self._by_fd: dict[int, tuple[Session, bool]] = {}  # fd -> (session, is the stray one)
        self._timers: list[tuple[float, int, Session]] = []
        self._seq = itertools.count()
        self._epoll: select.epoll | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._spinner: Session | None = None  # the lone transfer whose ACK the loop spins for
        self._spin_until = 0.0

    # -- service ---------------------------------------------------------------------

    def start(self) -> None:
        limit = raise_fd_limit()
        # A transfer holds three descriptors (two sockets, the file); keep some for the rest.
        self.max_sessions = min(self.max_sessions, (limit - 128) // 3)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        set_receive_buffer(self._sock, REQUEST_BUFFER)
        self._sock.bind((str(self.address), self.port))
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._epoll = select.epoll()
        self._epoll.register(self._sock.fileno(), select.EPOLLIN)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
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
        assert self._epoll is not None
        self._epoll.close()
        for sock in (self._sock, self._wake_r, self._wake_w):
            sock.close()
        log.info("TFTP on %s:%d stopped: %s", self.address, self.port,
                 ", ".join(f"{n} {what}" for what, n in sorted(self.stats.items())) or "idle")

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        assert self._epoll is not None
        poll, by_fd, timers = self._epoll.poll, self._by_fd, self._timers
        requests, wake = self._sock.fileno(), self._wake_r.fileno()
        while not self._stopping:
            if self._spinner is not None:  # busy-poll for a lone transfer's ACK (_spin_for)
                events = poll(0)
                if not events:
                    if time.monotonic() < self._spin_until:
                        continue
                    self._spinner.spin_misses += 1
                    self.stats["spin_misses"] += 1
                    self._spinner = None
                    continue
            else:
                wait = -1.0
                if timers:
                    wait = timers[0][0] - time.monotonic()
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
                            self._serve_session(entry[0], now)
                    elif fd == requests:
                        self._serve_requests()
                    elif fd == wake:
                        self._wake_r.recv(64)
                except Exception:  # a bug in one transfer must not stop the server
                    self.stats["internal_errors"] += 1
                    log.exception("TFTP: unexpected error; the loop goes on")
            if timers and timers[0][0] <= now:
                self._fire_timers(now)

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

    def _serve_session(self, session: Session, now: float) -> None:
        """One datagram from the peer (epoll is level-triggered: more wake us again)."""
        try:
            data = session.sock.recv(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # an ICMP error surfacing; the timer will resend or give up
            return
        if self._on_datagram(session, data, now):
            self._spin_for(session, now)
        elif self._spinner is session:
            self._spinner = None

    def _on_datagram(self, session: Session, data: bytes, now: float) -> bool:
        """Hand a datagram of the transfer to it; True when that was the awaited ACK and
        the next block went out in lock-step (the transfer waits for one ACK again)."""
        if data == session.awaited:  # the fast path: the ACK of all sent, one per window
            transfer, packets = advance(session.transfer, now)
            session.transfer = transfer
            session.awaited = awaited_ack(transfer)
            if len(packets) == 1 and transfer.phase is Phase.SENDING:  # lock-step
                try:
                    session.sock.send(packets[0])
                except OSError as err:  # a lost datagram: the timer resends it
                    self._send_failed(session.peer, err)
                    return False
                return True
            self._apply(session, transfer, packets, now)
            return False
        if len(data) == 4 and data[:2] == _ACK:
            event = Ack(int.from_bytes(data[2:], "big"))
        else:
            try:
                packet = parse(data)
            except Malformed:
                self.stats["malformed"] += 1
                return False
            if isinstance(packet, Ack | Error):
                event = packet
            else:
                event = Illegal(f"unexpected {getattr(packet, 'opcode', '?')!s} during a read")
        self._advance(session, event, now)
        return False

    def _spin_for(self, session: Session, now: float) -> None:
        """Busy-poll for a lone lock-step transfer's next ACK, as Linux's busy polling does
        for NICs that support it (veth and most VM NICs do not).

        In lock-step a transfer moves one block per round trip, and a thread that sleeps
        in epoll_wait adds a wake-up to every one of them. With a single transfer in
        flight (one machine loading its kernel over TFTP) the loop instead calls epoll
        with no timeout for up to ``SPIN_SECONDS`` after each block, so a new request is
        seen as soon as it would have been. A client whose ACKs keep missing that window
        (a slow link, or a CPU too busy to run the client soon) is not spun for again:
        spinning then only takes CPU from the others.
        """
        if len(self.sessions) == 1 and session.spin_misses < SPIN_MISSES:
            self._spinner, self._spin_until = session, now + SPIN_SECONDS
        else:
            self._spinner = None

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
            if existing.request == packet:
                return  # the client sent its request again; that transfer's timer answers it
            # A new request from the same port: the client has given the old transfer up
            # (PXE ROMs ask once for tsize, then again for the file, often without an ERROR).
            existing.transfer = existing.transfer._replace(
                phase=Phase.FAILED, reason=f"the client asked for {packet.filename!r} instead")
            self._finish(existing, time.monotonic(), logging.INFO)
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
        self.sessions[peer] = session
        assert self._epoll is not None
        for s, is_stray in ((sock, False), (stray, True)):
            self._by_fd[s.fileno()] = (session, is_stray)
            self._epoll.register(s.fileno(), select.EPOLLIN)
        if content.stage is not None and content.mac is not None and self.stages is not None:
            self.stages.record(content.mac, content.stage)
        self._advance(session, Start(), now)
        if not session.closed:
            heapq.heappush(self._timers, (session.transfer.deadline, next(self._seq), session))

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
        logger = client_log(log, session.content.mac) if session.content.mac else log
        where = f"{session.content.name} to {session.peer[0]}"
        if t.phase is Phase.DONE:
            self.stats["done"] += 1
            logger.info("sent %s: %d bytes in %.3f s (%.1f MB/s, blksize %d, window %d)",
                        where, sent, seconds, sent / seconds / 1e6, t.plan.blksize,
                        t.plan.windowsize)
        else:
            self.stats["failed"] += 1
            logger.log(level, "gave up %s after %d of %d bytes in %.3f s: %s", where, sent,
                       session.content.size, seconds, t.reason)
        self._close(session)

    def _close(self, session: Session) -> None:
        if session.closed:
            return
        session.closed = True
        if self._spinner is session:
            self._spinner = None
        if self.sessions.get(session.peer) is session:
            del self.sessions[session.peer]
        for sock in (session.sock, session.stray):
            self._by_fd.pop(sock.fileno(), None)
            if self._epoll is not None and not self._epoll.closed:
                with contextlib.suppress(OSError):
                    self._epoll.unregister(sock.fileno())
            sock.close()
        session.content.close()
