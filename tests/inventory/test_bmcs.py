"""Clients' BMCs in the inventory, on SQLite and on PostgreSQL (tests/inventory/conftest.py)."""

import stat
from dataclasses import replace

import pytest

from netboot.errors import NotFound
from netboot.inventory.bmcs import find_bmc, get_bmc, remove_bmc, set_bmc
from netboot.power.bmc import Bmc, BmcKind, TlsTrust
from netboot.provisioning.clients import add_client, remove_client

MAC = "52:54:00:00:00:01"
BMC = Bmc("198.18.0.1", "admin", "Pw-0123456789", 6231)


@pytest.fixture
def client(config, inventory) -> str:
    return add_client(config, inventory, MAC).client.mac


def test_a_bmc_reads_back_identically_with_its_password(inventory, client):
    set_bmc(inventory, client, BMC)
    assert find_bmc(inventory, client) == BMC
    assert get_bmc(inventory, client).password == "Pw-0123456789"


def test_a_redfish_bmc_reads_back_with_its_system_and_tls_trust(inventory, client):
    redfish = Bmc("bmc7.example", "root", "pw", 8443, BmcKind.REDFISH,
                  system="/redfish/v1/Systems/1", ca_pem="-----BEGIN CERTIFICATE-----\n")
    set_bmc(inventory, client, redfish)
    assert find_bmc(inventory, client) == redfish
    set_bmc(inventory, client, replace(redfish, ca_pem=None, insecure=True))
    assert find_bmc(inventory, client).trust is TlsTrust.INSECURE


def test_setting_a_bmc_again_replaces_it(inventory, client):
    set_bmc(inventory, client, BMC)
    other = Bmc("bmc7.example", "root", "other-pw")
    set_bmc(inventory, client, other)
    assert find_bmc(inventory, client) == other


def test_a_client_without_bmc_has_none_and_asking_for_it_says_how_to_give_one(inventory,
                                                                              client):
    assert find_bmc(inventory, client) is None
    with pytest.raises(NotFound, match=f"client {MAC} has no BMC: give it one with "
                                       f"'netboot client set {MAC} --bmc"):
        get_bmc(inventory, client)


def test_a_bmc_for_an_unknown_client_is_refused(inventory):
    with pytest.raises(NotFound, match=f"no client with MAC {MAC}"):
        set_bmc(inventory, MAC, BMC)


def test_a_removed_bmc_is_gone_and_removing_it_again_says_so(inventory, client):
    set_bmc(inventory, client, BMC)
    assert remove_bmc(inventory, client) is True
    assert find_bmc(inventory, client) is None
    assert remove_bmc(inventory, client) is False


def test_the_bmc_goes_with_its_client(config, inventory, client):
    set_bmc(inventory, client, BMC)
    remove_client(config, inventory, client, purge=True)
    add_client(config, inventory, MAC)
    assert find_bmc(inventory, MAC) is None


def test_the_records_repr_leaves_the_password_out(inventory, client):
    set_bmc(inventory, client, BMC)
    assert "Pw-0123456789" not in repr(find_bmc(inventory, client))


@pytest.mark.sqlite_only
def test_the_password_is_kept_in_the_0600_inventory_file(config, inventory, client):
    set_bmc(inventory, client, BMC)
    assert stat.S_IMODE(config.storage.database.stat().st_mode) == 0o600
