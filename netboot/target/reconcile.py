"""Reconcile: the inventory says what targets should exist; the backend is made to match.

:func:`desired_state` is pure (records in, :class:`DesiredState` out);
:func:`reconcile` adds the I/O: it reads the inventory and applies. Running it
twice changes nothing the second time. SAN hosts' targets are made the same way
from their own records. What an interrupted ``client add`` left is provisioning's
to clear (:func:`netboot.provisioning.root.recover_interrupted`, run by ``client
add`` and at ``serve`` start); such a client gets no target meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from netboot.config import Config
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.hosts import DiscoveryMutual, Host, Identity, discovery_mutual, hosts
from netboot.inventory.luns import LOWER_LUN, ROOT_LUN, LunRecord, extra_luns, host_luns
from netboot.inventory.store import Inventory
from netboot.storage.backend import open_storage
from netboot.storage.location import Location
from netboot.storage.model import StorageError, parse_image_ref
from netboot.target import Account, DesiredState, Lun, Outcome, TargetBackend, TargetSpec

log = logging.getLogger(__name__)


def target_prefix(config: Config) -> str:
    """The IQNs netboot owns (names.target_iqn makes every client's and host's under it)."""
    return f"{config.target.iqn_authority}:target:"


def _spec(config: Config, who: Identity, mac: str | None, luns: tuple[Lun, ...]) -> TargetSpec:
    """A target of its own: ``luns``, ``who``'s initiator alone, ``who``'s CHAP."""
    mutual = Account(who.mutual_user, who.mutual_secret)
    return TargetSpec(
        iqn=who.target_iqn,
        mac=mac,
        luns=luns,
        initiators=(who.initiator_iqn,),
        incoming=Account(who.chap_user, who.chap_secret),
        outgoing=mutual if config.target.mutual_chap else None,
    )


def target_spec(config: Config, client: Client, luns: Iterable[LunRecord] = (),
                lower: Location | None = None) -> TargetSpec:
    """One client's target: its root as LUN 1 (an overlay client's upper layer), its extra
    LUNs, an overlay client's ``lower`` layer read-only as :data:`LOWER_LUN`, its IQN
    alone, its CHAP."""
    assert client.lun_path is not None
    shared = (Lun(LOWER_LUN, lower.name, lower.store, readonly=True),) if lower else ()
    return _spec(config, client, client.mac,
                 (_lun(ROOT_LUN, client.lun_path), *(_lun(r.lun, r.path) for r in luns),
                  *shared))


def host_target_spec(config: Config, host: Host, luns: Iterable[LunRecord] = ()) -> TargetSpec:
    """One SAN host's target: its LUNs (from 1, no root), its IQN alone, its CHAP."""
    return _spec(config, host, None, tuple(_lun(r.lun, r.path) for r in luns))


def _lun(number: int, stored: str) -> Lun:
    """A LUN from the location the inventory keeps (a path, or ``rbd:POOL/IMAGE``)."""
    location = Location.parse(stored)
    return Lun(number, location.name, location.store)


def _by_owner(luns: Iterable[LunRecord]) -> dict[str, list[LunRecord]]:
    grouped: dict[str, list[LunRecord]] = {}
    for record in luns:
        grouped.setdefault(record.owner, []).append(record)
    return grouped


def desired_state(config: Config, clients: Iterable[Client], luns: Iterable[LunRecord],
                  hosts: Iterable[Host] = (), host_luns: Iterable[LunRecord] = (),
                  discovery_mutual: DiscoveryMutual | None = None,
                  lowers: Mapping[str, Location] | None = None) -> DesiredState:
    """The targets of every provisioned client (the others, mid-provisioning, get none yet)
    and of every SAN host. ``lowers``: where each image version overlay clients are set
    to lives (by ``NAME@N``); one missing gives its clients no lower LUN.

    Discovery accounts: the clients' first, in the order they always had, then the
    hosts'. The discovery mutual account is bound while there are hosts (only they are
    given it) and both mutual and discovery CHAP are on.
    """
    by_mac = _by_owner(luns)
    by_host = _by_owner(host_luns)
    host_specs = tuple(host_target_spec(config, h, by_host.get(h.name, ())) for h in hosts)
    lowers = lowers or {}
    specs = tuple(_client_spec(config, c, by_mac.get(c.mac, ()), lowers)
                  for c in clients if c.provisioned and c.lun_path) + host_specs
    auth = config.target.discovery_auth
    discovery = tuple(s.incoming for s in specs) if auth else ()
    answer = None
    if host_specs and discovery_mutual and auth and config.target.mutual_chap:
        answer = Account(discovery_mutual.user, discovery_mutual.secret)
    return DesiredState(prefix=target_prefix(config), targets=specs, discovery=discovery,
                        discovery_out=answer)


def _overlay(client: Client) -> bool:
    return client.boot_method is BootMethod.OVERLAY


def _client_spec(config: Config, client: Client, luns: Iterable[LunRecord],
                 lowers: Mapping[str, Location]) -> TargetSpec:
    return target_spec(config, client, luns,
                       lowers.get(client.image or "") if _overlay(client) else None)


def client_specs(config: Config, inventory: Inventory,
                 clients: Sequence[Client]) -> list[TargetSpec]:
    """``clients``' targets as reconcile makes them: their extra LUNs and an overlay
    client's lower layer too (a target renewed without it would lose its LUN 255)."""
    lowers = lower_locations(config, clients)
    return [_client_spec(config, c, extra_luns(inventory, c.mac), lowers) for c in clients]


def lower_locations(config: Config, clients: Iterable[Client]) -> dict[str, Location]:
    """Where the image versions overlay ``clients`` are set to live, by ``NAME@N``: a file,
    or on RBD the version's snapshot (which bs_rbd opens read-only). A version the store
    does not hold (removed behind netboot's back) is left out, logged."""
    wanted = sorted({c.image for c in clients if _overlay(c) and c.image})
    if not wanted:
        return {}
    storage = open_storage(config)
    found: dict[str, Location] = {}
    for ref in wanted:
        try:
            image = storage.find_image(parse_image_ref(ref))
        except (StorageError, ValueError) as err:
            image, why = None, str(err)
        else:
            why = "not in the image store"
        if image is None:
            log.error("reconcile: image %s of overlay clients: %s; their targets get no "
                      "lower LUN", ref, why)
            continue
        found[ref] = image.location
    return found


def read_desired(config: Config, inventory: Inventory) -> DesiredState:
    """The targets the inventory asks for now (:func:`desired_state` of its records)."""
    clients = inventory.clients()
    return desired_state(config, clients, extra_luns(inventory), hosts(inventory),
                         host_luns(inventory), discovery_mutual(inventory),
                         lower_locations(config, clients))


def _unkeyed(desired: DesiredState) -> DesiredState:
    """``desired`` with every CHAP secret left out."""
    def bare(account: Account | None) -> Account | None:
        return None if account is None else replace(account, secret="")

    return replace(desired, targets=tuple(
        replace(t, incoming=bare(t.incoming), outgoing=bare(t.outgoing))
        for t in desired.targets),
        discovery=tuple(replace(a, secret="") for a in desired.discovery),
        discovery_out=bare(desired.discovery_out))


def only_secrets_differ(desired: DesiredState, applied: DesiredState) -> bool:
    """Whether two desired states differ in CHAP secrets at most: what boot windows'
    preparation renews on the target itself, so the watch need not reconcile for it."""
    return _unkeyed(desired) == _unkeyed(applied)


def reconcile(config: Config, inventory: Inventory, backend: TargetBackend,
              desired: DesiredState | None = None) -> Outcome:
    """Make the target match the inventory (clients still being provisioned get none yet),
    or ``desired`` read from it a moment before."""
    if desired is None:
        desired = read_desired(config, inventory)
    outcome = backend.apply(desired)
    if outcome.changes:
        log.info("reconcile: %d change(s) for %d target(s)", len(outcome.changes),
                 len(desired.targets))
    for owner, error in outcome.failed.items():
        log.error("reconcile: %s failed: %s", owner, error)
    return outcome
