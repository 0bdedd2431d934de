"""What netboot needs from an iSCSI target implementation: a small protocol.

Everything above the target package (reconcile, the CLI, ``netboot serve``)
uses :class:`TargetBackend` only, so a second implementation (LIO through
rtslib-fb) is one more module and one more branch in
:func:`netboot.target.open_backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from netboot.target.model import (
    DesiredState,
    Login,
    Outcome,
    Renewal,
    TargetSpec,
    TargetState,
)


class TargetBackend(Protocol):
    """An iSCSI target service netboot brings in step with the inventory."""

    def running(self) -> int | None:
        """An id of the running target service (tgtd's pid) or None; a new id = restarted."""

    def start(self, portal: tuple[IPv4Address | IPv6Address, int]) -> None:
        """Start the target service listening on ``portal`` only."""

    def stop(self) -> None:
        """Remove every target and stop the service."""

    def targets(self) -> list[TargetState]:
        """Every target that exists, with the initiators logged in to it now."""

    def logins(self) -> dict[str, tuple[Login, ...]]:
        """Who is logged in to each target now, by IQN (targets nobody is logged in to
        left out). Cheap enough to call every second: ``netboot serve`` watches logins
        with it."""

    def apply(self, desired: DesiredState) -> Outcome:
        """Make every target under ``desired.prefix`` and discovery CHAP match ``desired``."""

    def renew(self, specs: Sequence[TargetSpec]) -> Renewal:
        """Bring each target to its spec (an account whose secret changed is made again),
        then close every session on it; the sessions each had, and the targets that failed.
        Boot windows' preparation, every window waiting at once (a boot storm's many)."""

    def forget_secrets(self) -> None:
        """Trust no CHAP secret the target holds: the next apply sets every account again."""
