"""From what tgtd holds to what netboot wants: an ordered list of management requests.

Pure: observed state and desired state in, operations out, so every ordering
rule below is unit-tested without a daemon. The rules exist because of how
tgt behaves:

* An account is bound by name, and tgt cannot report or change a secret, so
  an account whose secret is unknown or different is deleted and created again.
* tgt keeps a target's (and the global discovery target's) incoming accounts in
  slots and, after an unbind, counts them as if the slots were packed: an
  unbind that is not of the last slot makes the next ``show`` or login read
  slot 0 and crash tgtd (seen with tgt 1.0.85, ``usr/target.c`` ``account_ctl``).
  So accounts are only ever unbound from the end, and a deleted account (which
  tgt unbinds everywhere) is first unbound that way.
* A target with an ACL but no incoming account admits logins without CHAP, so
  while a target's accounts change its ACL is taken away, and a new target gets
  its accounts before its ACL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netboot.storage.location import Location, Store
from netboot.target.model import GLOBAL, Account, Lun, TargetSpec
from netboot.target.tgtmgmt import GLOBAL_TID, Mode, Operation, Param, Request, Status
from netboot.target.tgtshow import RBD_BSTYPE, Connection, TgtTarget


@dataclass(frozen=True)
class Op:
    """One request to tgtd: the request, what it does in words, and whose it is.

    ``what`` is what logs and errors show; ``request`` may carry a secret (kept
    out of its ``repr``) and is never logged.
    """

    request: Request
    what: str
    owner: str | None = None  # target IQN, GLOBAL, or None for shared accounts
    sets: tuple[str, str] | None = None  # (user, fingerprint) an account now holds
    drops: str | None = None  # user whose account this deletes
    done_if: frozenset[Status] = frozenset()  # refusals that mean its aim holds already
    peers: tuple[str, ...] = ()  # initiators' addresses, whose stuck connections may be reset


@dataclass(frozen=True)
class Observed:
    """tgtd's state as far as reconcile compares it."""

    targets: tuple[TgtTarget, ...]
    accounts: tuple[str, ...]
    discovery: tuple[str, ...]
    discovery_out: str | None = None


def close_connections(tid: int, iqn: str, connections: Iterable[Connection]) -> list[Op]:
    """Close ``connections`` of target ``tid`` (``iqn``) (``--mode conn --op delete``),
    which ends their sessions and drops what tgtd still had to send on them; one that
    ended meanwhile is no error."""
    return [Op(Request(Mode.CONNECTION, Operation.DELETE, tid=tid, sid=c.sid, cid=c.cid),
               f"close connection {c.cid} of session {c.sid} on {iqn}", iqn,
               done_if=frozenset({Status.NO_SESSION, Status.NO_CONNECTION}))
            for c in connections]


def _close_all(target: TgtTarget) -> list[Op]:
    return close_connections(target.tid, target.state.iqn, target.connections)


def fingerprint(account: Account) -> str:
    """What netboot remembers of a secret it gave tgtd: enough to compare, useless to log in."""
    return hashlib.sha256(f"{account.user}\0{account.secret}".encode()).hexdigest()


def _account(op: Operation, user: str, tid: int = GLOBAL_TID, *,
             outgoing: bool = False) -> Request:
    """An account request: bind or unbind on target ``tid`` (default: discovery), or delete."""
    return Request(Mode.ACCOUNT, op, tid=tid, params=((Param.USER, user),), outgoing=outgoing)


def _acl(op: Operation, tid: int, initiator: str) -> Request:
    return Request(Mode.TARGET, op, tid=tid, params=((Param.INITIATOR_NAME, initiator),))


def _unbind_tail(current: list[str], keep: int, tid: int, owner: str) -> list[Op]:
    """Unbind incoming accounts from the last slot back to ``keep`` (never leaving a gap)."""
    ops = []
    while len(current) > keep:
        user = current.pop()
        ops.append(Op(_account(Operation.UNBIND, user, tid),
                      f"unbind account {user} from {owner}", owner))
    return ops


def _kept_prefix(current: Iterable[str], wanted: list[str], renewed: set[str]) -> int:
    n = 0
    for have, want in zip(current, wanted, strict=False):
        if have != want or have in renewed:
            break
        n += 1
    return n


def _new_lun(tid: int, lun: Lun, rbd_options: str) -> Request:
    """A LUN request: a file through tgt's default backing store, an RBD image through bs_rbd
    with ``rbd_options`` (which Ceph configuration and client to open it as)."""
    params: tuple[tuple[Param, str], ...] = ((Param.PATH, lun.path),)
    if lun.store is Store.RBD:
        params += ((Param.BSTYPE, RBD_BSTYPE), (Param.BSOPTS, rbd_options))
    return Request(Mode.DEVICE, Operation.NEW, tid=tid, lun=lun.number, params=params)


def lun_identity(iqn: str, number: int) -> tuple[str, str]:
    """A LUN's SCSI id and serial number, from its target and number alone: every tgtd that
    exports it (two servers of a failover pair) presents one disk, whatever its tid."""
    digest = hashlib.sha256(f"{iqn}/{number}".encode()).hexdigest()
    return f"netboot-{digest[:24]}", digest[24:40]


def _identify_lun(tid: int, iqn: str, number: int) -> Request:
    scsi_id, scsi_sn = lun_identity(iqn, number)
    return Request(Mode.DEVICE, Operation.UPDATE, tid=tid, lun=number,
                   params=((Param.SCSI_ID, scsi_id), (Param.SCSI_SN, scsi_sn)))


def _readonly(tid: int, number: int, readonly: bool) -> Request:
    """tgt takes ``readonly`` only in an update of a LU that exists (``usr/target.c``
    ``tgt_device_create`` ignores it); writes then get DATA PROTECT (``usr/sbc.c``)."""
    return Request(Mode.DEVICE, Operation.UPDATE, tid=tid, lun=number,
                   params=((Param.READONLY, "1" if readonly else "0"),))


def plan(observed: Observed, targets: Iterable[TargetSpec], *, remove: Iterable[str] = (),
         discovery: list[Account] | None = None, discovery_out: Account | None = None,
         prune: bool = False, known: Mapping[str, str], rbd_options: str = "") -> list[Op]:
    """Operations that make tgtd hold ``targets`` and not ``remove``.

    ``discovery``: the accounts the global target should hold (None: leave it).
    ``discovery_out``: the global target's outgoing account, when ``discovery`` is given.
    ``prune``: also delete accounts nothing netboot wants uses (a full reconcile).
    ``known``: fingerprints of the secrets netboot gave the accounts tgtd holds now.
    ``rbd_options``: bs_rbd's options for LUNs on RBD images.
    """
    targets = list(targets)
    by_iqn = {t.state.iqn: t for t in observed.targets}
    wanted: dict[str, Account] = {}
    for spec in targets:
        for account in (spec.incoming, spec.outgoing):
            if account is not None:
                wanted[account.user] = account
    for account in (*(discovery or ()), *([discovery_out] if discovery_out else [])):
        wanted[account.user] = account
    renewed = {u for u, a in wanted.items()
               if u in observed.accounts and known.get(u) != fingerprint(a)}

    first: list[Op] = []  # removals and unbinds: everything that must precede account changes
    last: list[Op] = []   # creations and binds
    for iqn in remove:
        if iqn in by_iqn:
            # Its connections first: a LUN with answers still queued to an initiator that
            # vanished (a VM powered off) cannot be deleted until they are dropped.
            first += _close_all(by_iqn[iqn])
            peers = tuple(dict.fromkeys(login.address for login in by_iqn[iqn].state.logins
                                        if login.address))
            first.append(Op(Request(Mode.TARGET, Operation.DELETE, tid=by_iqn[iqn].tid,
                                    force=True), f"delete target {iqn}", iqn, peers=peers))

    next_tid = max((t.tid for t in observed.targets), default=0) + 1
    for spec in targets:
        have = by_iqn.get(spec.iqn)
        if have is None:
            tid = next_tid
            next_tid += 1
            last.append(Op(Request(Mode.TARGET, Operation.NEW, tid=tid,
                                   params=((Param.TARGETNAME, spec.iqn),)),
                           f"create target {spec.iqn}", spec.iqn))
            incoming: list[str] = []
            acl: list[str] = []
            out = None
            luns: dict[int, Lun] = {}
        else:
            tid = have.tid
            incoming = list(have.state.incoming)
            acl = list(have.state.initiators)
            out = have.state.outgoing
            luns = {lun.number: lun for lun in have.state.luns}
        want_in = [spec.incoming.user]
        keep = _kept_prefix(incoming, want_in, renewed)
        want_out = spec.outgoing.user if spec.outgoing else None
        if keep < len(incoming) or len(incoming) < len(want_in):
            # its CHAP changes: close the target to everyone until CHAP is back
            for initiator in acl:
                first.append(Op(_acl(Operation.UNBIND, tid, initiator),
                                f"close {spec.iqn} to {initiator} while its CHAP changes",
                                spec.iqn))
            acl = []
        first += _unbind_tail(incoming, keep, tid, spec.iqn)
        if out is not None and (out != want_out or out in renewed):
            first.append(Op(_account(Operation.UNBIND, out, tid, outgoing=True),
                            f"unbind outgoing account {out} from {spec.iqn}", spec.iqn))
            out = None
        wanted_luns = {lun.number: lun for lun in spec.luns}
        if have is not None and any(not lun.same_storage(wanted_luns.get(n))
                                    for n, lun in luns.items()):
            # a LUN goes (a reimaged root, a removed extra LUN, an overlay client's lower
            # on another version): its sessions go first, as for a removed target; tgtd
            # cannot delete a LUN with answers still queued
            first += _close_all(have)
        for number, lun in sorted(luns.items()):
            if not lun.same_storage(wanted_luns.get(number)):
                last.append(Op(Request(Mode.DEVICE, Operation.DELETE, tid=tid, lun=number),
                               f"delete LUN {number} of {spec.iqn}", spec.iqn))
        for number, lun in sorted(wanted_luns.items()):
            had = luns.get(number)
            if not lun.same_storage(had):
                last.append(Op(_new_lun(tid, lun, rbd_options),
                               f"add LUN {number} ({Location(lun.store, lun.path)}) to {spec.iqn}",
                               spec.iqn))
                last.append(Op(_identify_lun(tid, spec.iqn, number),
                               f"set the SCSI id of LUN {number} of {spec.iqn}", spec.iqn))
                had = None
            if lun.readonly != (had.readonly if had else False):
                # before the ACL admits anyone to a new target; in place on an existing LUN
                last.append(Op(_readonly(tid, number, lun.readonly),
                               f"make LUN {number} of {spec.iqn} "
                               f"{'read-only' if lun.readonly else 'writable'}", spec.iqn))
        for user in want_in[len(incoming):]:
            last.append(Op(_account(Operation.BIND, user, tid),
                           f"bind account {user} to {spec.iqn}", spec.iqn))
        if want_out is not None and out is None:
            last.append(Op(_account(Operation.BIND, want_out, tid, outgoing=True),
                           f"bind outgoing account {want_out} to {spec.iqn}", spec.iqn))
        for initiator in acl:
            if initiator not in spec.initiators:
                last.append(Op(_acl(Operation.UNBIND, tid, initiator),
                               f"unbind initiator {initiator} from {spec.iqn}", spec.iqn))
        for initiator in spec.initiators:
            if initiator not in acl:
                last.append(Op(_acl(Operation.BIND, tid, initiator),
                               f"admit initiator {initiator} to {spec.iqn}", spec.iqn))

    # The global target: as asked, or (None) as it is, renewed accounts unbound and bound again.
    current = list(observed.discovery)
    want = [a.user for a in discovery] if discovery is not None else list(current)
    keep = _kept_prefix(current, want, renewed)
    first += _unbind_tail(current, keep, GLOBAL_TID, "discovery")
    last += [Op(_account(Operation.BIND, user), f"bind account {user} to discovery", GLOBAL)
             for user in want[keep:]]
    out = observed.discovery_out
    want_out = (discovery_out.user if discovery_out else None) if discovery is not None else out
    if out is not None and (out != want_out or out in renewed):
        first.append(Op(_account(Operation.UNBIND, out, outgoing=True),
                        f"unbind outgoing account {out} from discovery", GLOBAL))
        out = None
    if want_out is not None and out is None:
        last.append(Op(_account(Operation.BIND, want_out, outgoing=True),
                       f"bind outgoing account {want_out} to discovery", GLOBAL))

    # Accounts: renewed ones, and (with ``prune``, or those of removed targets) unused ones.
    listed = {s.iqn for s in targets} | set(remove)
    in_use = {*want, *([want_out] if want_out else [])} | {
        u for t in observed.targets if t.state.iqn not in listed
        for u in (*t.state.incoming, t.state.outgoing) if u}
    candidates = set(observed.accounts) if prune else {
        u for t in observed.targets if t.state.iqn in set(remove)
        for u in (*t.state.incoming, t.state.outgoing) if u}
    accounts: list[Op] = []
    for user in observed.accounts:
        if user in renewed or (user in candidates and user not in wanted and user not in in_use):
            accounts.append(Op(_account(Operation.DELETE, user), f"delete account {user}",
                               drops=user))
    for user, account in wanted.items():
        if user in renewed or user not in observed.accounts:
            accounts.append(Op(Request(Mode.ACCOUNT, Operation.NEW,
                                       params=((Param.USER, user),), secret=account.secret),
                               f"create account {user}", sets=(user, fingerprint(account))))
    return first + accounts + last
