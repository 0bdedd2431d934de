"""Reconcile: the inventory says what targets should exist; the backend is made to match.

:func:`desired_state` is pure (records in, :class:`DesiredState` out);
:func:`reconcile` adds the I/O: it reads the inventory and applies. Running it
twice changes nothing the second time. What an interrupted ``client add`` left
is provisioning's to clear (:func:`netboot.provisioning.root.recover_interrupted`,
run by ``client add`` and at ``serve`` start); such a client gets no target meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from netboot.config import Config
from netboot.inventory.clients import Client
from netboot.inventory.luns import ROOT_LUN, LunRecord, extra_luns
from netboot.inventory.store import Inventory
from netboot.storage.location import Location
from netboot.target import Account, DesiredState, Lun, Outcome, TargetBackend, TargetSpec

log = logging.getLogger(__name__)


def target_prefix(config: Config) -> str:
    """The IQNs netboot owns (names.target_iqn makes every client's under it)."""
    return f"{config.target.iqn_authority}:target:"


def target_spec(config: Config, client: Client, luns: Iterable[LunRecord] = ()) -> TargetSpec:
    """One client's target: its root as LUN 1, its extra LUNs, its IQN alone, its CHAP."""
    assert client.lun_path is not None
    mutual = Account(client.mutual_user, client.mutual_secret)
    return TargetSpec(
        iqn=client.target_iqn,
        mac=client.mac,
        luns=(_lun(ROOT_LUN, client.lun_path), *(_lun(r.lun, r.path) for r in luns)),
        initiators=(client.initiator_iqn,),
        incoming=Account(client.chap_user, client.chap_secret),
        outgoing=mutual if config.target.mutual_chap else None,
    )


def _lun(number: int, stored: str) -> Lun:
    """A LUN from the location the inventory keeps (a path, or ``rbd:POOL/IMAGE``)."""
    location = Location.parse(stored)
    return Lun(number, location.name, location.store)


def desired_state(config: Config, clients: Iterable[Client],
                  luns: Iterable[LunRecord]) -> DesiredState:
    """The targets of every provisioned client; the others (mid-provisioning) get none yet."""
    by_mac: dict[str, list[LunRecord]] = {}
    for record in luns:
        by_mac.setdefault(record.mac, []).append(record)
    specs = tuple(target_spec(config, c, by_mac.get(c.mac, ()))
                  for c in clients if c.provisioned and c.lun_path)
    discovery = tuple(s.incoming for s in specs) if config.target.discovery_auth else ()
    return DesiredState(prefix=target_prefix(config), targets=specs, discovery=discovery)


def reconcile(config: Config, inventory: Inventory, backend: TargetBackend) -> Outcome:
    """Make the target match the inventory (clients still being provisioned get none yet)."""
    desired = desired_state(config, inventory.clients(), extra_luns(inventory))
    outcome = backend.apply(desired)
    if outcome.changes:
        log.info("reconcile: %d change(s) for %d target(s)", len(outcome.changes),
                 len(desired.targets))
    for owner, error in outcome.failed.items():
        log.error("reconcile: %s failed: %s", owner, error)
    return outcome
