"""Boot windows and their tokens: which boot may fetch a client's private files, once each.

A client's private files (its iPXE script, its initrd part with the CHAP
secrets, its PXELINUX or GRUB config) are worth stealing, and the address they are
asked from proves nothing: every process on a booted client holds it, and
any host on the VLAN can take it. What an unprivileged process cannot do is
the firmware's or iPXE's DHCP exchange (it needs port 68). So that exchange
opens a *boot window* for the client's MAC, and the window carries one random
single-use token per private file: the DHCP reply names the script with the
first, the script (or the PXELINUX or GRUB config) names the initrd part with the
next. A token is bound to its MAC, its boot and its file, spent on first use,
and dead when the window closes (the client reported ``root``) or expires.

The window lives in the inventory, so it survives a ``netboot serve``
restart in the middle of a boot and is shared with TFTP worker processes.
This module holds the records and the rules (pure); the store runs them in
its transactions.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

TOKEN_BYTES = 16  # 128 bits from the secrets module
EXPIRED_KEPT = 3600.0  # seconds a dead window's tokens are kept, to name a late second use


class BootFile(StrEnum):
    """The private files of one boot, each with its own token."""

    SCRIPT = "script"  # the iPXE script: its token is in the DHCP reply's boot file name
    CLIENT_PART = "client-part"  # the initrd part: its token is in the script or PXELINUX config
    PXELINUX = "pxelinux"  # the PXELINUX config: a fixed name, so spent by name, once
    GRUB = "grub"  # the GRUB config (grub/clients/<mac>.cfg): likewise


class Verdict(Enum):
    """What a token (or a name spent by MAC) is good for now."""

    GRANTED = "granted"  # first use, inside its window: serve the file
    NOT_READY = "not ready"  # the window is still being prepared (sessions dropped, secrets
                             # renewed): ask again in a moment
    SPENT = "spent"  # used before: someone else has it, or is replaying it
    EXPIRED = "expired"  # its window closed or timed out
    UNKNOWN = "unknown"  # not a token of this client's for this file


@dataclass(frozen=True)
class BootWindow:
    """One boot of one client: when it opened, until when, and its tokens."""

    boot_id: int
    mac: str
    opened: float
    expires: float
    ready: bool  # prepared: the client's old sessions are gone and its secrets renewed
    closed: float | None  # when the client reported root (or a newer window replaced it)
    tokens: Mapping[BootFile, str]
    spent: frozenset[BootFile] = frozenset()

    def is_open(self, now: float) -> bool:
        return self.closed is None and now < self.expires

    def reusable(self, now: float) -> bool:
        """Whether another PXE exchange at ``now`` belongs to this same boot.

        A boot makes several (the firmware's, then iPXE's, each DISCOVER and
        REQUEST) before it fetches any private file; once one file is spent,
        a new exchange is a new boot, which gets a new window.
        """
        return self.is_open(now) and not self.spent


@dataclass(frozen=True)
class TokenUse:
    """A token as the store found it, with its window: what :func:`judge` needs."""

    file: BootFile
    window: BootWindow
    used_at: float | None
    used_by: str | None


@dataclass(frozen=True)
class Spend:
    """The verdict on one request for a private file, and who spent the token first."""

    verdict: Verdict
    window: BootWindow | None = None
    first_user: str | None = None  # the address that spent it (when SPENT)


def new_tokens() -> dict[BootFile, str]:
    """One fresh token per private file: 32 hex digits, fit for a URL path and a TFTP name."""
    return {file: secrets.token_hex(TOKEN_BYTES) for file in BootFile}


def judge(use: TokenUse | None, mac: str, file: BootFile, now: float) -> Spend:
    """Whether ``use`` lets client ``mac`` have ``file`` at ``now`` (the one rule)."""
    if use is None or use.window.mac != mac or use.file is not file:
        return Spend(Verdict.UNKNOWN, use.window if use else None)
    if use.used_at is not None:
        return Spend(Verdict.SPENT, use.window, use.used_by)
    if not use.window.is_open(now):
        return Spend(Verdict.EXPIRED, use.window)
    if not use.window.ready:
        return Spend(Verdict.NOT_READY, use.window)
    return Spend(Verdict.GRANTED, use.window)
