"""The transfers in flight: a session per client address, found by descriptor, woken by deadline.

Each transfer has its own port (its transfer ID, RFC 1350 section 4) with two
sockets: one connected to the client, which the kernel gives only the client's
datagrams and which sends without a route lookup per block (twice as cheap as
``sendto``), and one unconnected, which gets everything else: a datagram from
a wrong transfer ID lands there and never reaches the transfer.

The table finds a session three ways, each in O(1) or O(log n): by the client's
address (a repeated or replacing request), by the descriptor epoll reports
(every datagram, without scanning the sessions) and by deadline (a heap with
one entry per session, which the loop's timeout is taken from). It also counts
the sessions of each client IP address, when one opens or closes, for the
server's cap per source.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from netboot.boot.catalog import Content
from netboot.tftp.packets import Request
from netboot.tftp.transfer import Transfer

MAX_DATAGRAM = 65536  # a receive buffer any UDP datagram fits in


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
    spin_misses: int = 0  # times its ACK did not come within a busy-poll (netboot.tftp.fastpath)


def family(address: IPv4Address | IPv6Address) -> socket.AddressFamily:
    """The socket family of ``address``: TFTP serves an IPv6-only boot VLAN on IPv6."""
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def transfer_sockets(address: IPv4Address | IPv6Address,
                     peer: tuple[str, int]) -> tuple[socket.socket, socket.socket]:
    """A new port for one transfer: (connected to ``peer``, unconnected for strays).

    The first socket binds port 0 WITHOUT SO_REUSEADDR: with it, Linux may pick a port
    that other SO_REUSEADDR sockets hold (another transfer's, or the request port
    itself, which then loses requests to this transfer's stray socket). Reuse is
    allowed only afterwards, for the connected twin on the same port.
    """
    stray = socket.socket(family(address), socket.SOCK_DGRAM)
    sock = socket.socket(family(address), socket.SOCK_DGRAM)
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


class SessionTable:
    """The open sessions by peer, by descriptor and by deadline. One thread only.

    The loop reads ``by_fd`` and ``timers`` itself, bound to locals: it looks at them
    for every datagram.
    """

    def __init__(self) -> None:
        self.by_peer: dict[tuple[str, int], Session] = {}
        self.by_fd: dict[int, tuple[Session, bool]] = {}  # fd -> (session, is the stray one)
        self.timers: list[tuple[float, int, Session]] = []  # (deadline, tie-breaker, session)
        self.per_source: dict[str, int] = {}  # client IP -> its open sessions (none: absent)
        self._seq = itertools.count()

    def add(self, session: Session, epoll: select.epoll) -> None:
        """Take a new session in and have epoll watch both its sockets."""
        self.by_peer[session.peer] = session
        ip = session.peer[0]
        self.per_source[ip] = self.per_source.get(ip, 0) + 1
        for s, is_stray in ((session.sock, False), (session.stray, True)):
            self.by_fd[s.fileno()] = (session, is_stray)
            epoll.register(s.fileno(), select.EPOLLIN)

    def schedule(self, session: Session) -> None:
        """Wake the session at its transfer's deadline."""
        heapq.heappush(self.timers, (session.transfer.deadline, next(self._seq), session))

    def due(self, now: float) -> Iterator[Session]:
        """The open sessions whose deadline has passed by ``now``, each taken off the heap
        (the caller schedules it again if it goes on). A session that made progress since
        it was scheduled is put back for its new deadline instead."""
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, _, session = heapq.heappop(timers)
            if session.closed:
                continue
            if session.transfer.deadline > now:  # progress since: sleep till the new deadline
                self.schedule(session)
                continue
            yield session

    def close(self, session: Session, epoll: select.epoll | None) -> None:
        """Let a session go: out of the table, its sockets and its content closed."""
        if session.closed:
            return
        session.closed = True
        if self.by_peer.get(session.peer) is session:
            del self.by_peer[session.peer]
        ip = session.peer[0]
        left = self.per_source[ip] - 1
        if left:
            self.per_source[ip] = left
        else:
            del self.per_source[ip]
        for sock in (session.sock, session.stray):
            self.by_fd.pop(sock.fileno(), None)
            if epoll is not None and not epoll.closed:
                with contextlib.suppress(OSError):
                    epoll.unregister(sock.fileno())
            sock.close()
        session.content.close()
