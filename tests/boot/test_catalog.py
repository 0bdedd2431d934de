"""Boot file names: traversal rules, per-client files and who may have them (no network)."""

from __future__ import annotations

import os
from ipaddress import IPv4Address

import pytest

from netboot.boot.catalog import AccessDenied, Catalog, check_name
from netboot.errors import NotFound
from netboot.inventory.pool import InventoryPool
from netboot.inventory.store import Inventory
from tests.conftest import BASE_CONFIG
from tests.support.bootserving import MAC, SECRET, sample_client

OWNER, OTHER = IPv4Address("198.18.0.10"), IPv4Address("198.18.0.11")


@pytest.fixture
def catalog_for(make_config):
    made = []

    def make(unknown: str = "ignore") -> Catalog:
        base = BASE_CONFIG.replace("dhcp:\n", f"dhcp:\n  unknown: {unknown}\n")
        config = make_config(base=base)
        config.tftp_root_path.mkdir(parents=True, exist_ok=True)
        pool = InventoryPool(lambda: Inventory(config.storage.database))
        with pool.borrow() as inventory, inventory.transaction() as db:
            inventory.insert(db, sample_client(str(OWNER)))
        made.append(pool)
        return Catalog(config, pool)

    yield make
    for pool in made:
        pool.stop()


@pytest.mark.parametrize(("name", "reason"), [
    ("a\0b", "NUL"), ("a\nb", "control"), ("a\\b", "backslash"), ("/etc/passwd", "absolute"),
    ("../x", "'..'"), ("a/../../x", "'..'"),
])
def test_check_name_refuses_each_traversal_form(name: str, reason: str):
    with pytest.raises(AccessDenied, match=reason):
        check_name(name)


def test_check_name_drops_dot_and_empty_components():
    assert check_name("./a//b/.") == ["a", "b"]


def test_client_part_is_rendered_for_its_owner(catalog_for):
    content = catalog_for().open(f"clients/{MAC}/client.img", OWNER)
    assert SECRET.encode() in content.source.data
    assert content.mac == MAC


def test_client_part_is_refused_to_another_address(catalog_for):
    with pytest.raises(AccessDenied):
        catalog_for().open(f"clients/{MAC}/client.img", OTHER)


def test_pxelinux_config_accepts_the_dashed_mac_of_its_initrd_path(catalog_for):
    content = catalog_for().open("clients/52-54-00-12-34-56/client.img", OWNER)
    assert content.mac == MAC


def test_unregistered_mac_gets_the_not_registered_script_under_policy_boot(catalog_for):
    catalog = catalog_for("boot")
    content = catalog.open("clients/52:54:00:ab:cd:ef/boot.ipxe", OTHER)
    assert b"not registered: MAC 52:54:00:ab:cd:ef" in content.source.data


def test_unregistered_mac_gets_not_found_under_policy_ignore(catalog_for):
    with pytest.raises(NotFound):
        catalog_for().open("clients/52:54:00:ab:cd:ef/boot.ipxe", OTHER)


def test_unregistered_mac_never_gets_a_client_part(catalog_for):
    with pytest.raises(NotFound):
        catalog_for("boot").open("clients/52:54:00:ab:cd:ef/client.img", OTHER)


def test_a_directory_is_not_a_file(catalog_for):
    catalog = catalog_for()
    (catalog.config.tftp_root_path / "sub").mkdir()
    with pytest.raises(NotFound):
        catalog.open("sub", OWNER)


def test_a_fifo_is_not_opened_for_reading(catalog_for):
    catalog = catalog_for()
    os.mkfifo(catalog.config.tftp_root_path / "pipe")
    with pytest.raises(NotFound):
        catalog.open("pipe", OWNER)
