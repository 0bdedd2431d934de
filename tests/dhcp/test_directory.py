"""DHCP's client directory: re-read when what DHCP answers from changed, not at each write."""

from __future__ import annotations

import pytest

from netboot.dhcp.directory import ClientDirectory
from netboot.inventory.stages import Stage
from netboot.inventory.store import open_inventory
from netboot.provisioning.clients import add_client

MAC = "52:54:00:00:00:01"


@pytest.fixture
def inventory(make_config):
    config = make_config()
    with open_inventory(config) as inv:
        add_client(config, inv, MAC)
        yield inv


@pytest.fixture
def reads(inventory, monkeypatch):
    """How many times the directory read every client."""
    count = [0]
    whole = inventory.clients

    def counted():
        count[0] += 1
        return whole()

    monkeypatch.setattr(inventory, "clients", counted)
    return count


def test_stages_written_while_clients_boot_cost_no_re_read(inventory, reads):
    directory = ClientDirectory(inventory, refresh=5.0)
    directory.tick(0.0)
    inventory.record_stages([(MAC, Stage.DHCP, 1.0)], 60)
    inventory.record_stage(MAC, Stage.LOADER, at=2.0)
    directory.tick(10.0)
    assert reads[0] == 1


def test_a_changed_hostname_is_seen_after_the_refresh(inventory, reads):
    directory = ClientDirectory(inventory, refresh=5.0)
    directory.tick(0.0)
    inventory.update(MAC, hostname="renamed")
    directory.tick(1.0)
    assert directory.find(MAC).hostname != "renamed"  # within the refresh: the cache
    directory.tick(10.0)
    assert (directory.find(MAC).hostname, reads[0]) == ("renamed", 2)
