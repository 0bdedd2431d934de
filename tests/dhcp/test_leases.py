"""Leases in memory and in the inventory database: never two MACs on one address."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from ipaddress import IPv4Address

import pytest

from netboot.dhcp.leases import Decline, Grant, Lease, LeaseStore, LeaseTable, Release
from netboot.inventory.store import Inventory

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


def declined_rows(store: LeaseStore) -> int:
    return store.inventory.query("SELECT count(*) FROM dhcp_declined")[0][0]


def test_loading_leaves_expired_declines_in_the_database(store):
    store.save(Decline(A, IP, NOW + 600), NOW)
    store.load(NOW + 601)
    assert declined_rows(store) == 1


def test_writing_a_lease_drops_expired_declines(store):
    store.save(Decline(A, IP, NOW + 600), NOW)
    store.save(Grant(B, IPv4Address("198.18.0.201"), NOW + 4200), NOW + 601)
    assert declined_rows(store) == 0


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


def test_cli_lists_leases_and_declined_addresses_as_json(make_config, tmp_path):
    config = make_config()
    with Inventory(config.storage.database) as inventory:
        store = LeaseStore(inventory)
        store.save(Grant(A, IP, time.time() + 3600), time.time())
        store.save(Decline(B, IPv4Address("198.18.0.201"), time.time() + 600), time.time())
    proc = subprocess.run([sys.executable, "-m", "netboot", "--config",
                           str(tmp_path / "netboot.yaml"), "dhcp", "leases", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)
    out = json.loads(proc.stdout)
    assert [(x["mac"], x["ip"], x["state"]) for x in out["leases"]] == [(A, str(IP), "active")]
    assert [x["ip"] for x in out["declined"]] == ["198.18.0.201"]


def test_cli_lists_leases_as_a_table(make_config, tmp_path):
    config = make_config()
    with Inventory(config.storage.database) as inventory:
        LeaseStore(inventory).save(Grant(A, IP, time.time() - 10), time.time() - 3600)
    proc = subprocess.run([sys.executable, "-m", "netboot", "--config",
                           str(tmp_path / "netboot.yaml"), "dhcp", "leases"],
                          capture_output=True, text=True, timeout=60, check=True)
    header, row = proc.stdout.splitlines()[:2]
    assert header.split() == ["MAC", "IP", "EXPIRES", "STATE"]
    assert row.split()[:2] == [A, str(IP)] and row.split()[-1] == "expired"
