"""The netboot servers sharing one inventory: who runs, since when, with which dynamic range,
and which of them holds the iSCSI portal.

Each ``netboot serve`` writes its own row every :data:`HEARTBEAT` seconds; a row
not refreshed for :data:`ALIVE_WITHIN` seconds is a server that died without a
word (a power cut), and a clean stop says so in ``stopped``. Two servers that
share an inventory keep their leases for unknown machines each in its own memory,
so their dynamic ranges must not overlap: a serve refuses to start while a live
server's range overlaps its own. This module holds the records and those rules
(pure); the store reads and writes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address

HEARTBEAT = 5.0  # seconds between a serve's writes of its row
ALIVE_WITHIN = 3 * HEARTBEAT  # a row older than this belongs to a server that died


class PortalRole(StrEnum):
    """What a server does for the iSCSI portal."""

    HOLDER = "holder"  # clients log in through it (the only server, or the VRRP master)
    STANDBY = "standby"  # target.failover: ready to take the floating portal over
    FENCED = "fenced"  # lost the floating portal, its tgtd stopped: a serve restart rejoins
    NONE = "none"  # target.manage is off: some other target serves the LUNs


class Liveness(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # stopped cleanly
    LOST = "lost"  # no heartbeat for ALIVE_WITHIN seconds: killed, or its host is gone


@dataclass(frozen=True)
class ServerRecord:
    """One server's row."""

    name: str
    address: IPv4Address  # on the boot VLAN
    range_start: IPv4Address  # its DHCP dynamic range
    range_end: IPv4Address
    portal: PortalRole
    started: float
    seen: float  # its last heartbeat
    stopped: float | None = None

    def liveness(self, now: float) -> Liveness:
        if self.stopped is not None:
            return Liveness.STOPPED
        return Liveness.RUNNING if now - self.seen <= ALIVE_WITHIN else Liveness.LOST

    def overlaps(self, other: ServerRecord) -> bool:
        return self.range_start <= other.range_end and other.range_start <= self.range_end


def range_clashes(me: ServerRecord, others: Iterable[ServerRecord],
                  now: float) -> list[ServerRecord]:
    """The other running servers whose dynamic range overlaps ``me``'s."""
    return [o for o in others if o.name != me.name and o.liveness(now) is Liveness.RUNNING
            and me.overlaps(o)]


def portal_holder(servers: Iterable[ServerRecord], now: float) -> ServerRecord | None:
    """The running server that holds the portal, if one does."""
    return next((s for s in servers if s.portal is PortalRole.HOLDER
                 and s.liveness(now) is Liveness.RUNNING), None)


def preparers(servers: Iterable[ServerRecord], me: str, now: float) -> frozenset[str]:
    """The servers that must prepare a boot window before it is ready: this one and every
    other running server with a tgtd clients may log in to (portal holder or standby)."""
    return frozenset({me} | {s.name for s in servers if s.liveness(now) is Liveness.RUNNING
                             and s.portal in (PortalRole.HOLDER, PortalRole.STANDBY)})
