"""Replies to registered clients, decided and encoded once, patched per request.

A registered client's reply depends only on the config, its inventory record
and the shape of its request (options, ``ciaddr``, the relay's ``giaddr``, the
port), never on leases or the clock. So the first reply to each shape is
kept as bytes, and the next request of that shape costs a dict lookup and
two patches: ``xid`` and ``flags`` (``giaddr`` and the broadcast bit are part
of the shape, since they also pick the subnet and the destination; the
reply's ``secs`` is always 0). This is what lets one Python thread answer well ahead of dnsmasq
(see bench/dhcp_bench.py). An entry is used only while the client record it
was made from is the one the directory holds, so an edited client is
re-decided within the directory's refresh interval.
"""

from __future__ import annotations

from netboot.dhcp.decide import Decision
from netboot.dhcp.packet import OPTIONS_START, Request
from netboot.inventory.clients import Client

FLAGS = 10  # the octet holding the broadcast bit
CIADDR = slice(12, 16)
GIADDR = slice(24, 28)


class PreparedReplies:
    """Encoded replies by request shape, at most ``max_entries`` (then it starts afresh)."""

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[Client, Decision, bytes]] = {}
        self.hits = 0

    @staticmethod
    def shape(data: bytes, request: Request) -> bytes:
        """Everything in a request that can change a registered client's reply, except the
        fields :meth:`patch` sets."""
        return (request.chaddr + data[CIADDR] + data[GIADDR] + bytes((data[FLAGS] >> 7,))
                + request.local_port.to_bytes(2, "big") + data[OPTIONS_START:])

    def get(self, shape: bytes, client: Client | None) -> tuple[Decision, bytes] | None:
        entry = self._entries.get(shape)
        if entry is None or entry[0] is not client:
            return None
        self.hits += 1
        return entry[1], entry[2]

    def put(self, shape: bytes, client: Client, decision: Decision, encoded: bytes) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[shape] = (client, decision, encoded)

    @staticmethod
    def patch(encoded: bytes, data: bytes) -> bytes:
        """``encoded`` with this request's xid (offset 4) and flags (offset 10)."""
        out = bytearray(encoded)
        out[4:8] = data[4:8]
        out[10:12] = data[10:12]
        return bytes(out)
