"""A roll-out's decisions, without I/O: which clients, in which batches, and how each one's
boot on the new version is judged from what the inventory recorded.

The runner (:mod:`netboot.rollout.run`) powers machines off and on and waits; everything
it decides comes from here, so it is tested on plain records.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from netboot.errors import ValidationError
from netboot.inventory.clients import Client
from netboot.inventory.stages import ORDER, Stage
from netboot.names import looks_like_mac, normalize_mac


def select(clients: Sequence[Client], selectors: Iterable[str], *, everyone: bool) -> list[Client]:
    """The clients ``selectors`` name, in inventory order: MACs, or host names with shell
    globs (``web-*``); ``everyone``: all of them. A selector that names nobody is an
    error (a typo must not shrink a roll-out silently)."""
    selectors = list(selectors)
    if everyone == bool(selectors):
        raise ValidationError("name the clients (MACs or host names, globs allowed) or give "
                              "--all, not both")
    if everyone:
        return list(clients)
    chosen: set[str] = set()
    for selector in selectors:
        mac = normalize_mac(selector) if looks_like_mac(selector) else None
        found = [c.mac for c in clients
                 if c.mac == mac or fnmatchcase(c.hostname, selector.lower())]
        if not found:
            raise ValidationError(f"no client is named {selector!r} (a MAC, or a host name "
                                  "with globs; see `netboot client list`)")
        chosen.update(found)
    return [c for c in clients if c.mac in chosen]


def batches(clients: Sequence[Client], batch: int, canary: int) -> list[list[Client]]:
    """The first ``canary`` clients alone, then the rest ``batch`` at a time."""
    if batch < 1 or canary < 0:
        raise ValidationError("--batch is at least 1 and --canary at least 0")
    first = [list(clients[:canary])] if canary else []
    rest = clients[canary:]
    return first + [list(rest[i:i + batch]) for i in range(0, len(rest), batch)]


class Outcome(enum.Enum):
    """Where one client's boot on the new version stands."""

    WAITING = "waiting"
    UP = "up"  # reached os-up, on the version it was moved to
    FAILED = "failed"  # reported a failure
    TIMED_OUT = "timed out"
    WRONG_VERSION = "wrong version"  # up, but on another version than the one it was given


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    stage: Stage | None  # the furthest stage this boot reached (None: not one yet)

    def __str__(self) -> str:
        reached = f"after stage {self.stage}" if self.stage else "before its first stage"
        return f"{self.outcome.value} {reached}"


def judge(log: Sequence[tuple[Stage, float]], client: Client, version: str, since: float,
          now: float, deadline: float) -> Verdict:
    """One client's boot begun at ``since`` (when it was powered on), from its stage log and
    record: up once it reported os-up on ``version``, failed once it reported a failure;
    past ``deadline`` timed out."""
    seen = [stage for stage, at in log if at >= since]
    reached = sorted({s for s in seen if s is not Stage.FAILED}, key=ORDER.index)
    furthest = reached[-1] if reached else None  # /init's DHCP comes after the kernel
    if Stage.FAILED in seen:
        return Verdict(Outcome.FAILED, furthest)
    if Stage.OS_UP in seen:
        if client.booted_image != version:
            return Verdict(Outcome.WRONG_VERSION, Stage.OS_UP)
        return Verdict(Outcome.UP, Stage.OS_UP)
    if now >= deadline:
        return Verdict(Outcome.TIMED_OUT, furthest)
    return Verdict(Outcome.WAITING, furthest)
