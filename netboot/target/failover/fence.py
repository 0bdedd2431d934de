"""Fencing in Ceph: the peer's storage address blocklisted as a whole, this server's lifted.

An entity address ``IP:0/0`` in the blocklist matches every Ceph client from that IP,
whatever its nonce (``OSDMap::is_blocklisted``; verified by
tests/target/failover/test_fence.py on Ceph 16): a dead tgtd's clients, and any the
peer would start later. ``profile rbd`` may add entries; lifting one needs the mon cap
``allow command 'osd blocklist' with blocklistop=rm`` (:data:`netboot.lab.ceph.LIFT_FENCE_CAP`).
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

from netboot.config import Config

log = logging.getLogger(__name__)


def whole_host(address: IPv4Address) -> str:
    """The blocklist entry that matches every client from ``address``."""
    return f"{address}:0/0"


def fence_peer(config: Config) -> None:
    """Blocklist every Ceph client of the peer for ``fence_seconds``, and return once this
    process has the osdmap saying so (the OSDs then refuse the peer and drop its watches)."""
    failover = config.target.failover
    assert failover.peer_storage_address is not None  # the config rules require it
    from netboot.storage.rbdstore import blocklist, wait_for_latest_osdmap  # Ceph only here

    entry = whole_host(failover.peer_storage_address)
    blocklist(config.storage.rbd, entry, failover.fence_seconds, why="fencing the peer")
    wait_for_latest_osdmap(config.storage.rbd)
    log.warning("fenced the peer: Ceph refuses every client from %s for %d s",
                failover.peer_storage_address, failover.fence_seconds)


def own_storage_address(config: Config) -> IPv4Address:
    """This server's address as Ceph sees it (where its tgtd's clients come from)."""
    from netboot.storage.rbdstore import client_address  # Ceph's bindings only here

    return IPv4Address(client_address(config.storage.rbd).split(":", 1)[0])


def lift_own_fence(config: Config) -> IPv4Address:
    """Remove the blocklist entry the peer may have put on this server; its address."""
    from netboot.storage.rbdstore import unblocklist, wait_for_latest_osdmap  # Ceph only here

    own = own_storage_address(config)
    unblocklist(config.storage.rbd, whole_host(own))
    wait_for_latest_osdmap(config.storage.rbd)
    return own
