"""The lock-step shortcut: the awaited ACK answered with the next datagram, and the busy-poll.

In lock-step a transfer moves one block per round trip, so what limits its rate
is the time from an ACK to the next DATA. Nearly every datagram of a transfer is
the ACK of everything sent (one per window), so that one takes a shortcut: it is
recognised by its 4 bytes (:func:`~netboot.tftp.transfer.awaited_ack`, kept on
the session) and answered from :func:`~netboot.tftp.transfer.advance`, with no
parsing and no dispatch; for a cached file the next block is a prebuilt datagram.
Anything else (a duplicate or old ACK, an ERROR, garbage) goes to the server,
which parses it and hands it to ``step()``.

The busy-poll: a loop that sleeps in epoll_wait adds a wake-up to every round
trip. With a single transfer in flight (one machine loading its kernel over
TFTP) the loop instead polls epoll with no timeout for up to ``SPIN_SECONDS``
after each lock-step block, as Linux's busy polling does for NICs that support
it (veth and most VM NICs do not); a new request is still seen as soon as it
would have been. A client whose ACKs keep missing that window (a slow link, or
a CPU too busy to run the client soon) is not spun for again after
``SPIN_MISSES`` misses: spinning then only takes CPU from the others.

This runs once per block, so it is written for speed: one method per datagram,
no layers between the receive and the send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from netboot.tftp.sessions import MAX_DATAGRAM, Session
from netboot.tftp.transfer import Phase, Transfer, advance, awaited_ack

SPIN_SECONDS = 200e-6  # how long the loop busy-polls for a lone transfer's ACK
SPIN_MISSES = 8  # ACKs that missed the spin window, after which a transfer is not spun for
_SENDING = Phase.SENDING


class FastPath:
    """A server loop's shortcut for its transfers' datagrams, and whom it busy-polls for.

    ``spinner`` is the session the loop busy-polls for (None: the loop sleeps in
    epoll), until ``spin_until``. What is not the shortcut goes back to the server:
    ``on_other`` gets any other datagram of a transfer, ``apply`` a window or a last
    block to send (and the transfer's end), ``send_failed`` a send that failed.
    """

    def __init__(self, sessions: dict[tuple[str, int], Session], stats: Counter[str],
                 on_other: Callable[[Session, bytes, float], None],
                 apply: Callable[[Session, Transfer, list[bytes], float], None],
                 send_failed: Callable[[tuple[str, int], OSError], None]) -> None:
        self.spinner: Session | None = None
        self.spin_until = 0.0
        self._sessions = sessions
        self._stats = stats
        self._on_other = on_other
        self._apply = apply
        self._send_failed = send_failed

    def serve(self, session: Session, now: float) -> None:
        """One datagram from the transfer's peer (epoll is level-triggered: more wake us
        again). After a lock-step block goes out, a lone transfer is spun for."""
        try:
            data = session.sock.recv(MAX_DATAGRAM)
        except OSError:  # nothing to read, or an ICMP error: the timer resends or gives up
            return
        if data == session.awaited:
            transfer, packets = advance(session.transfer, now)
            session.transfer = transfer
            session.awaited = awaited_ack(transfer)
            if len(packets) == 1 and transfer.phase is _SENDING:  # lock-step
                try:
                    session.sock.send(packets[0])
                except OSError as err:  # a lost datagram: the timer resends it
                    self._send_failed(session.peer, err)
                else:
                    if len(self._sessions) == 1 and session.spin_misses < SPIN_MISSES:
                        self.spinner, self.spin_until = session, now + SPIN_SECONDS
                    else:
                        self.spinner = None
                    return
            else:
                self._apply(session, transfer, packets, now)
        else:
            self._on_other(session, data, now)
        if self.spinner is session:
            self.spinner = None

    def missed(self) -> None:
        """The spin window passed without the ACK: count it and let the loop sleep."""
        assert self.spinner is not None
        self.spinner.spin_misses += 1
        self._stats["spin_misses"] += 1
        self.spinner = None

    def forget(self, session: Session) -> None:
        """A session closes: the loop no longer spins for it."""
        if self.spinner is session:
            self.spinner = None
