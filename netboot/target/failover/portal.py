"""The floating portal on one server: prepared before tgtd starts, kept by keepalived, and
each VRRP transition carried out as :mod:`.decide` says.

Transitions run in keepalived's notify script, one at a time (a lock file), and the
only state, whether this server holds the portal and whether it lost it since it was
prepared (fenced), is a file next to keepalived's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from ipaddress import IPv4Interface
from pathlib import Path

from netboot.config import Config
from netboot.host.files import atomic_write, file_lock
from netboot.target.failover import address, fence
from netboot.target.failover.decide import Action, VrrpState, decide, holds_after
from netboot.target.failover.keepalived import Files, argv, files, write_files
from netboot.target.tgtd import stop_tgtd

log = logging.getLogger(__name__)

NONLOCAL_BIND = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")


def floating_address(config: Config) -> IPv4Interface:
    """The portal address with the boot subnet's prefix, as it is added to the interface."""
    return IPv4Interface(f"{config.portal[0]}/{config.dhcp.subnet.prefixlen}")


def prepare(config: Config) -> list[str]:
    """Before this server's tgtd starts: let it bind the floating address it does not hold
    (``ip_nonlocal_bind``, else tgtd listens on every address), stop a tgtd of an earlier
    run (its Ceph clients may be fenced), then lift the fence on this server's own storage
    address (nothing of this server's is left that could write stale data). Returns the
    keepalived argv to run (files written)."""
    NONLOCAL_BIND.write_text("1\n")
    stop_tgtd(config.target.tgt_control_port)
    own = fence.lift_own_fence(config)
    log.info("lifted any fence on this server's storage address %s", own)
    where = write_files(config)
    _save(where, PortalState())
    address.drop(config.vrrp_interface, floating_address(config))
    return argv(where)


def notify(config: Config, state: VrrpState) -> tuple[Action, ...]:
    """Carry out VRRP ``state`` on this server; the actions done."""
    where = files(config)
    with _locked(where):
        before = _load(where)
        actions = decide(before.holding, state, before.fenced)
        started = time.monotonic()
        for action in actions:
            _do(config, action)
            log.warning("portal %s: %s done at +%.2f s", state, action,
                        time.monotonic() - started)
        _save(where, PortalState(holds_after(actions, before.holding),
                                 before.fenced or Action.STOP_TARGET in actions))
    return actions


def holding(config: Config) -> bool:
    """Whether this server holds the portal now (as its last transition left it)."""
    return _load(files(config)).holding


def fenced(config: Config) -> bool:
    """Whether this server lost the portal since it was prepared: its tgtd was stopped and
    its storage address is (or soon will be) blocklisted by the peer, so tgtd must not
    start again until the portal is prepared anew (a restart of serve)."""
    return _load(files(config)).fenced


def _do(config: Config, action: Action) -> None:
    vip = floating_address(config)
    if action is Action.FENCE_PEER:
        fence.fence_peer(config)
    elif action is Action.TAKE_ADDRESS:
        address.take(config.vrrp_interface, vip)
    elif action is Action.DROP_ADDRESS:
        address.drop(config.vrrp_interface, vip)
    elif action is Action.STOP_TARGET:
        stop_tgtd(config.target.tgt_control_port)


@dataclass(frozen=True)
class PortalState:
    """What the transitions left: the address held, and whether this server's tgtd was
    stopped because the portal went to the peer."""

    holding: bool = False
    fenced: bool = False


def _load(where: Files) -> PortalState:
    try:
        saved = json.loads(where.state.read_text())
        return PortalState(bool(saved["holding"]), bool(saved.get("fenced", False)))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return PortalState()


def _save(where: Files, state: PortalState) -> None:
    atomic_write(where.state, json.dumps(asdict(state)).encode(), 0o600)


@contextmanager
def _locked(where: Files) -> Iterator[None]:
    with file_lock(where.lock):
        yield
