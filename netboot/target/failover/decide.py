"""What a server does when keepalived reports a VRRP state: pure, event in, actions out.

The only memory is whether this server holds the floating address now. Rules:

* MASTER, not holding: fence the peer, *then* take the address. A peer that merely
  looked dead (a lost VRRP link) can then never write again, and every image's
  exclusive lock passes at once; clients reach this server only after that.
* BACKUP, FAULT or STOP while holding: drop the address and stop this server's tgtd.
  The peer takes over and fences this server's address, so every Ceph client of that
  tgtd is dead for writes; only a new start of the portal (which lifts the fence on
  this server's own address before a fresh tgtd opens anything) brings it back.
* MASTER on a server fenced before: nothing. It has no tgtd to serve the address, and
  it leaves VRRP (:mod:`.service` stops its keepalived) until serve starts again.
* Anything else (a repeated state, BACKUP at start) changes nothing.
"""

from __future__ import annotations

from enum import StrEnum


class VrrpState(StrEnum):
    """The states keepalived passes to its notify script (third argument)."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"
    FAULT = "FAULT"
    STOP = "STOP"


class Action(StrEnum):
    """One step of a transition, carried out in the order given."""

    FENCE_PEER = "fence-peer"  # blocklist the peer's storage address; wait for that osdmap
    TAKE_ADDRESS = "take-address"  # add the floating address, send gratuitous ARPs
    DROP_ADDRESS = "drop-address"
    STOP_TARGET = "stop-target"  # this tgtd's Ceph clients are (or will be) fenced


def decide(holding: bool, state: VrrpState, fenced: bool = False) -> tuple[Action, ...]:
    """The actions for VRRP ``state`` on a server that holds the portal (``holding``) or not,
    and that lost it before (``fenced``: its tgtd is stopped, so it takes nothing back)."""
    if state is VrrpState.MASTER:
        return () if holding or fenced else (Action.FENCE_PEER, Action.TAKE_ADDRESS)
    return (Action.DROP_ADDRESS, Action.STOP_TARGET) if holding else ()


def holds_after(actions: tuple[Action, ...], holding: bool) -> bool:
    """Whether the server holds the portal once ``actions`` are done."""
    if Action.TAKE_ADDRESS in actions:
        return True
    return holding and Action.DROP_ADDRESS not in actions
