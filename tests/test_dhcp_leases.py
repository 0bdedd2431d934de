"""Leases in memory and in the inventory database: never two MACs on one address."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from netboot.dhcp.leases import Decline, Grant, Lease, LeaseStore, LeaseTable, Release
from netboot.inventory import Inventory

A, B = "52:54:00:00:00:0a", "52:54:00:00:00:0b"
IP = IPv4Address("198.18.0.200")
NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path):
    with Inventory(tmp_path / "inventory.sqlite3") as inventory:
        yield LeaseStore(inventory)


def test_granted_lease_survives_a_reload(store):
    store.save(Grant(A, IP, NOW + 3600), NOW)
    assert store.load(NOW).of(A) == Lease(A, IP, NOW + 3600)


def test_offer_hold_is_not_written(store):
    store.save(Grant(A, IP, NOW + 60, persist=False), NOW)
    assert store.load(NOW).of(A) is None


def test_regranted_address_leaves_the_previous_holder(store):
    store.save(Grant(A, IP, NOW + 10), NOW)
    store.save(Grant(B, IP, NOW + 3600), NOW + 20)
    table = store.load(NOW + 20)
    assert table.of(A) is None
    assert table.at(IP) == Lease(B, IP, NOW + 3600)


def test_released_lease_is_gone_after_reload(store):
    store.save(Grant(A, IP, NOW + 3600), NOW)
    store.save(Release(A, IP), NOW)
    assert store.load(NOW).of(A) is None


def test_declined_address_stays_out_after_reload_until_its_time(store):
    store.save(Decline(A, IP, NOW + 600), NOW)
    assert store.load(NOW).declined(IP, NOW + 1)
    assert not store.load(NOW + 601).declined(IP, NOW + 601)


def test_address_of_another_live_lease_is_not_free():
    table = LeaseTable([Lease(A, IP, NOW + 10)])
    assert not table.free_for(IP, B, NOW)
    assert table.free_for(IP, A, NOW)
    assert table.free_for(IP, B, NOW + 10)


def test_grant_moves_a_mac_to_its_new_address():
    table = LeaseTable([Lease(A, IP, NOW + 10)])
    table.apply(Grant(A, IPv4Address("198.18.0.201"), NOW + 20))
    assert table.at(IP) is None
    assert table.of(A).ip == IPv4Address("198.18.0.201")
