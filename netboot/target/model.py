"""What a target should look like and what one does look like, independent of the backend.

A backend (tgt today, LIO later) turns a :class:`DesiredState` into its own
commands; everything above it (reconcile, the CLI) speaks only these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netboot.errors import NetbootError
from netboot.storage.location import Store


class TargetError(NetbootError):
    """The iSCSI target refused or failed an operation; the message says which and why."""


class TargetUnreachable(TargetError):
    """No target daemon answers on the configured control channel."""


@dataclass(frozen=True)
class Account:
    """A CHAP user name and secret. The secret never appears in ``repr`` (logs)."""

    user: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Lun:
    """One logical unit: its number on the target and the storage behind it (``path``: a
    file or device, or ``POOL/IMAGE`` for an RBD image); ``readonly``: the target refuses
    writes to it (an overlay client's shared lower layer)."""

    number: int
    path: str
    store: Store = Store.FILE
    readonly: bool = False

    def same_storage(self, other: Lun | None) -> bool:
        """Whether ``other`` is this LUN's number and storage (read-only or not)."""
        return other is not None and (self.number, self.path, self.store) == (
            other.number, other.path, other.store)


@dataclass(frozen=True)
class TargetSpec:
    """One client's target as it should be: its LUNs, who may log in and with which CHAP."""

    iqn: str
    mac: str | None  # the owning client, so every log line about it names it; None: a SAN host's
    luns: tuple[Lun, ...]
    initiators: tuple[str, ...]
    incoming: Account
    outgoing: Account | None = None


@dataclass(frozen=True)
class DesiredState:
    """Everything netboot wants on the target.

    ``prefix`` marks the IQNs netboot owns: targets under it that are not in
    ``targets`` are removed; targets outside it are somebody else's and left alone.
    ``discovery`` lists the accounts that may authenticate SendTargets discovery
    (empty: discovery needs no CHAP); ``discovery_out`` is the one the target answers
    discovery with in mutual CHAP (None: it answers no initiator that asks).
    """

    prefix: str
    targets: tuple[TargetSpec, ...]
    discovery: tuple[Account, ...] = ()
    discovery_out: Account | None = None


@dataclass(frozen=True)
class Login:
    """One initiator logged in to a target now (an I_T nexus), and where it connects from."""

    initiator: str
    address: str | None


@dataclass(frozen=True)
class TargetState:
    """A target as the backend reports it (``target list``), with who is logged in to it."""

    iqn: str
    luns: tuple[Lun, ...]
    initiators: tuple[str, ...]
    incoming: tuple[str, ...]  # user names only: no backend reports secrets back
    outgoing: str | None
    logins: tuple[Login, ...]

    @property
    def sessions(self) -> int:
        return len(self.logins)


GLOBAL = "discovery"  # the key failures of the global (discovery) target are reported under


@dataclass
class Outcome:
    """What one apply did: changes made (for the log) and targets that failed, by IQN
    (or :data:`GLOBAL` for the discovery target)."""

    changes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.changes or self.failed)


@dataclass
class Renewal:
    """What renewing targets did (a batch of boot windows' preparation): the sessions each
    target had (now closed), by IQN, and the targets that failed, by IQN."""

    closed: dict[str, tuple[Login, ...]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
