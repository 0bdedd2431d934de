"""Replies to registered clients, decided and encoded once, patched per request.

A registered client's reply depends only on the config, its inventory record
and its request, never on leases or the clock. So the first reply to each
request is kept as bytes, keyed by the request's *shape*: the whole datagram
but its ``xid`` and ``secs``, with where it came from and the port it came to.
The next request of that shape is answered without being parsed again (it
would parse to the same :class:`Request`, but for those two fields): a dict
lookup and one patch, the ``xid`` (the reply's ``secs`` is always 0). Parsing
was half of the DHCP loop's Python. This is what lets one Python thread
answer well ahead of dnsmasq (see bench/dhcp_bench.py). An entry is used only
while the client record it was made from is the one the directory holds, so
an edited client is re-decided within the directory's refresh interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from netboot.dhcp.decide import Decision
from netboot.dhcp.packet import Request
from netboot.inventory.clients import Client

XID = slice(4, 8)  # RFC 2131 section 2: op, htype, hlen, hops, then xid (4) and secs (2)
SECS_END = 10

Shape = tuple[tuple[str, int], int, bytes]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A decided reply: the request it was decided for (with that request's ``xid``), the
    client record it was decided from, and the encoded reply; ``slot`` is the token slot
    the decision was made with (see :data:`netboot.dhcp.service.TOKEN_SLOT`)."""

    client: Client
    request: Request
    decision: Decision
    encoded: bytes
    slot: str | None


class PreparedReplies:
    """Encoded replies by request shape, at most ``max_entries`` (then it starts afresh)."""

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self._entries: dict[Shape, Prepared] = {}
        self.hits = 0

    @staticmethod
    def shape(data: bytes, source: tuple[str, int], local_port: int) -> Shape:
        """Everything a reply can depend on: where the request came from and to, and all
        its bytes but the ``xid`` and ``secs``."""
        return source, local_port, data[:XID.start] + data[SECS_END:]

    def get(self, shape: Shape) -> Prepared | None:
        return self._entries.get(shape)

    def put(self, shape: Shape, prepared: Prepared) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[shape] = prepared

    @staticmethod
    def patch(encoded: bytes, data: bytes) -> bytes:
        """``encoded`` with this request's xid (the flags are part of the shape)."""
        return encoded[:XID.start] + data[XID] + encoded[XID.stop:]
