"""The Linux tgt backend: netboot's targets kept in a tgtd through its management socket.

Each apply observes tgtd (three ``show`` requests), plans with
:mod:`netboot.target.tgtplan` and runs the plan; an apply that finds
everything in place runs nothing else. Applies from the CLI and from
``netboot serve`` are serialised by a lock file in the state directory, which
also keeps the fingerprints of the secrets netboot gave tgtd (tgt cannot
report a secret back, so this is how a changed secret is noticed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from netboot.errors import NetbootError
from netboot.host.files import atomic_write, file_lock
from netboot.host.sockets import abort_tcp
from netboot.log import client_log
from netboot.target.model import (
    GLOBAL,
    Account,
    DesiredState,
    Login,
    Outcome,
    Renewal,
    TargetError,
    TargetSpec,
    TargetState,
    TargetUnreachable,
)
from netboot.target.tgtd import start_tgtd, stop_tgtd, tgtd_pid
from netboot.target.tgtmgmt import Mode, Operation, Request, Status, TargetRefused, call
from netboot.target.tgtplan import Observed, Op, close_connections, plan
from netboot.target.tgtshow import (
    Connection,
    find_targets,
    parse_accounts,
    parse_connections,
    parse_global_accounts,
    parse_logins,
    parse_portal_ports,
    parse_targets,
)

log = logging.getLogger(__name__)

DISCOVERY_ACCOUNTS_MAX = 16  # tgt's global target: a static int[16], never grown safely
# A LUN is busy while commands are in its backing store (``usr/target.c``
# tgt_device_destroy): after its connections closed, those finish within moments.
LUN_BUSY_WAIT = 10.0
LUN_BUSY_POLL = 0.1
# Still busy this long after its connections were closed: a peer that stopped reading
# (netboot.host.sockets says why tgt then waits on it), whose connections are reset.
LUN_STUCK_AFTER = 1.0


def backend_lock(state_dir: Path, control_port: int) -> Path:
    """The lock file that serialises every apply and renewal on the tgtd at ``control_port``
    (CLI and serve alike)."""
    return state_dir / f"tgt-{control_port}.lock"


class TgtBackend:
    """tgtd on one control port, with netboot's bookkeeping in ``state_dir``."""

    def __init__(self, control_port: int, state_dir: Path, rbd_options: str = "") -> None:
        """``rbd_options``: bs_rbd's ``--bsopts`` for LUNs on RBD images."""
        self.control_port = control_port
        self.rbd_options = rbd_options
        self._lock = backend_lock(state_dir, control_port)
        self._secrets = state_dir / f"tgt-{control_port}.accounts.json"

    # -- the backend interface -----------------------------------------------------

    def running(self) -> int | None:
        """The daemon's pid when one runs (it changes when tgtd is restarted)."""
        return tgtd_pid(self.control_port)

    def start(self, portal: tuple[IPv4Address | IPv6Address, int]) -> None:
        start_tgtd(self.control_port, portal)

    def stop(self) -> None:
        stop_tgtd(self.control_port)

    def targets(self) -> list[TargetState]:
        """Every target tgtd has, netboot's or not, with its logins (one ``show``)."""
        return [t.state for t in parse_targets(self._show(Mode.TARGET))]

    def logins(self) -> dict[str, tuple[Login, ...]]:
        """Who is logged in to each target (one ``show``, only its sessions read)."""
        return parse_logins(self._show(Mode.TARGET))

    def apply(self, desired: DesiredState) -> Outcome:
        """Make tgtd hold exactly ``desired`` under its prefix: create, fix, remove.

        tgt keeps the discovery accounts in a fixed array of 16 (``usr/target.c``:
        ``global_target_aids``) and crashes when a 17th is bound, so accounts past
        the 16th are not bound and reported: those clients log in but cannot discover.
        """
        with self._locked():
            observed = self._observe()
            ours = {t.state.iqn for t in observed.targets if t.state.iqn.startswith(desired.prefix)}
            strays = sorted(ours - {t.iqn for t in desired.targets})
            discovery = list(desired.discovery[:DISCOVERY_ACCOUNTS_MAX])
            outcome = self._run_plan(observed, list(desired.targets), strays, discovery,
                                     desired.discovery_out, prune=True)
        left_out = [a.user for a in desired.discovery[DISCOVERY_ACCOUNTS_MAX:]]
        if left_out:
            outcome.failed[GLOBAL] = (
                f"tgt holds at most {DISCOVERY_ACCOUNTS_MAX} discovery accounts; "
                f"{', '.join(left_out)} can log in but not use SendTargets discovery")
        return outcome

    def renew(self, specs: Sequence[TargetSpec]) -> Renewal:
        """Each target brought to its spec (accounts left alone elsewhere), then each of its
        connections closed (``--mode conn --op delete``), which ends its sessions.

        The connections are listed after the accounts changed: an initiator that logged
        in again a moment before with the old secret is closed too, and cannot return.
        One observation and one plan serve every target of the batch (a boot storm's
        windows cost one whole ``show`` per batch, not per boot), and only these targets
        are parsed from tgtd's reports; the plan sees them alone, which is enough with
        ``prune=False``: it touches no other target and no account but theirs. A target
        tgtd does not hold yet is made from a full observation (a new tid; it has no
        sessions to close). Connections are listed per target (``--mode conn``).
        """
        iqns = {spec.iqn for spec in specs}
        macs = {spec.iqn: spec.mac for spec in specs if spec.mac is not None}
        with self._locked():
            held = find_targets(self._show(Mode.TARGET), iqns)
            observed = self._observe() if held.keys() < iqns else Observed(
                tuple(held.values()), tuple(parse_accounts(self._show(Mode.ACCOUNT))),
                *parse_global_accounts(self._show(Mode.SYSTEM)))
            outcome = self._run_plan(observed, list(specs), [], None, None, prune=False)
            renewal = Renewal(failed=dict(outcome.failed))
            closing = Outcome()
            for iqn, target in held.items():
                if iqn in renewal.failed:
                    continue
                live = self._connections(target.tid)
                for op in close_connections(target.tid, iqn, [c for c, _ in live]):
                    self._run(op, closing, macs, {})
                renewal.closed[iqn] = tuple({c.sid: login for c, login in live}.values())
        return renewal

    def forget_secrets(self) -> None:
        """Drop the fingerprints of the secrets netboot set.

        tgt cannot show a secret, so one changed behind netboot's back (same
        account name, same bindings) looks in step; without fingerprints every
        account counts as unknown and the next apply deletes and re-creates it
        in the safe order the plan uses for any secret change.
        """
        with self._locked():
            self._secrets.unlink(missing_ok=True)

    # -- internals ---------------------------------------------------------------

    def _show(self, mode: Mode) -> str:
        return call(self.control_port, Request(mode, Operation.SHOW),
                    what=f"show {mode.name.lower()}")

    def _connections(self, tid: int) -> list[tuple[Connection, Login]]:
        """Target ``tid``'s connections now (none if it is gone)."""
        try:
            text = call(self.control_port, Request(Mode.CONNECTION, Operation.SHOW, tid=tid),
                        what=f"show connections of target {tid}")
        except TargetRefused as err:
            if err.status == Status.NO_TARGET:
                return []
            raise
        return parse_connections(text)

    def _observe(self) -> Observed:
        targets = parse_targets(self._show(Mode.TARGET))
        accounts = parse_accounts(self._show(Mode.ACCOUNT))
        discovery, discovery_out = parse_global_accounts(self._show(Mode.SYSTEM))
        return Observed(tuple(targets), tuple(accounts), tuple(discovery), discovery_out)

    def _run_plan(self, observed: Observed, specs: list[TargetSpec], remove: list[str],
                  discovery: list[Account] | None, discovery_out: Account | None, *,
                  prune: bool) -> Outcome:
        pid = self.running()
        known = self._load_known(pid)
        ops = plan(observed, specs, remove=remove, discovery=discovery,
                   discovery_out=discovery_out, prune=prune, known=known,
                   rbd_options=self.rbd_options)
        macs = {s.iqn: s.mac for s in specs if s.mac is not None}
        outcome = Outcome()
        try:
            for op in ops:
                if op.owner in outcome.failed:
                    continue  # that target already failed; its later steps would too
                self._run(op, outcome, macs, known)
        finally:
            if any(op.sets or op.drops for op in ops):
                self._save_known(pid, known)
        return outcome

    def _run(self, op: Op, outcome: Outcome, macs: dict[str, str],
             known: dict[str, str]) -> None:
        logger = client_log(log, macs[op.owner]) if op.owner in macs else log
        started = time.monotonic()
        reset = False
        while True:
            try:
                call(self.control_port, op.request, what=op.what)
                break
            except TargetUnreachable:
                raise
            except TargetError as err:
                status = err.status if isinstance(err, TargetRefused) else None
                if status in op.done_if:
                    logger.info("%s", err)
                    return
                waited = time.monotonic() - started
                if status == Status.LUN_ACTIVE and waited < LUN_BUSY_WAIT:
                    if op.peers and not reset and waited >= LUN_STUCK_AFTER:
                        self._reset_connections(op, logger)
                        reset = True
                    time.sleep(LUN_BUSY_POLL)  # commands of a closed connection finishing
                    continue
                logger.error("%s", err)
                outcome.failed[op.owner or GLOBAL] = str(err)
                return
        if op.sets:
            known[op.sets[0]] = op.sets[1]
        if op.drops:
            known.pop(op.drops, None)
        logger.info("%s", op.what)
        outcome.changes.append(op.what)

    def _reset_connections(self, op: Op, logger: logging.LoggerAdapter | logging.Logger) -> None:
        """Reset the TCP connections of ``op``'s initiators to tgtd's portals: closed by
        tgt but still holding the LUN, so their peers stopped reading (powered off?)."""
        pid = self.running()
        if pid is None:
            return
        ports = parse_portal_ports(self._show(Mode.PORTAL))
        for peer in op.peers:
            for port in sorted(ports):
                try:
                    count = abort_tcp(pid, port, peer)
                except NetbootError as err:
                    logger.warning("%s: %s", op.what, err)
                    continue
                if count:
                    logger.warning("%s: %d connection(s) from %s to port %d still open after "
                                   "tgt closed them, answers unread (the initiator stopped "
                                   "reading: powered off?); reset them", op.what, count, peer,
                                   port)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self._lock):
            yield

    def _load_known(self, pid: int | None) -> dict[str, str]:
        """Fingerprints valid for the tgtd now running (a restarted tgtd has no accounts)."""
        try:
            saved = json.loads(self._secrets.read_text())
        except (FileNotFoundError, ValueError):
            saved = {}
        return dict(saved.get("accounts", {})) if saved.get("tgtd_pid") == pid else {}

    def _save_known(self, pid: int | None, known: dict[str, str]) -> None:
        atomic_write(self._secrets, json.dumps({"tgtd_pid": pid, "accounts": known}).encode())
