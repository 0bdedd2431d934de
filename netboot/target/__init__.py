"""The iSCSI target side: a small backend interface and the backends behind it.

Everything above this package (reconcile, the CLI, ``netboot serve``) uses
:class:`TargetBackend` only, so a second backend (LIO through rtslib-fb)
is one more module and one more branch in :func:`open_backend`.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Protocol

from netboot.config import Config
from netboot.config import TargetBackend as BackendName
from netboot.target.model import (
    Account,
    DesiredState,
    Login,
    Lun,
    Outcome,
    TargetError,
    TargetSpec,
    TargetState,
    TargetUnreachable,
)


class TargetBackend(Protocol):
    """What netboot needs from an iSCSI target implementation."""

    def running(self) -> int | None:
        """An id of the running target service (tgtd's pid) or None; a new id = restarted."""

    def start(self, portal: tuple[IPv4Address, int]) -> None:
        """Start the target service listening on ``portal`` only."""

    def stop(self) -> None:
        """Remove every target and stop the service."""

    def targets(self) -> list[TargetState]:
        """Every target that exists, with the initiators logged in to it now.

        Cheap enough to call every second: ``netboot serve`` watches logins with it.
        """

    def ensure(self, spec: TargetSpec) -> Outcome:
        """Get-or-create one target with its LUNs, ACL and CHAP, exactly as ``spec`` says."""

    def remove(self, iqn: str) -> Outcome:
        """Delete one target."""

    def apply(self, desired: DesiredState) -> Outcome:
        """Make every target under ``desired.prefix`` and discovery CHAP match ``desired``."""

    def forget_secrets(self) -> None:
        """Trust no CHAP secret the target holds: the next apply sets every account again."""


def open_backend(config: Config) -> TargetBackend | None:
    """The backend ``target.backend`` names; None when netboot does not manage the target."""
    from netboot.target.tgt import TgtBackend

    if not config.target.manage:
        return None
    if config.target.backend is BackendName.TGT:
        return TgtBackend(config.target.tgt_control_port, config.storage.state_dir)
    raise TargetError(f"target backend {config.target.backend} is not implemented")


def managed_backend(config: Config) -> TargetBackend:
    """The backend, for commands that only make sense when netboot manages the target."""
    backend = open_backend(config)
    if backend is None:
        raise TargetError("target.manage is off in the config: netboot does not manage the "
                          "iSCSI target")
    return backend


__all__ = [
    "Account", "DesiredState", "Login", "Lun", "Outcome", "TargetBackend", "TargetError",
    "TargetSpec", "TargetState", "TargetUnreachable", "managed_backend", "open_backend",
]
