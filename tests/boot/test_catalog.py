"""Boot file names: traversal rules, per-client files and who may have them (no network)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from netboot.arch import Arch
from netboot.boot.catalog import AccessDenied, Catalog, check_name
from netboot.errors import NotFound
from netboot.inventory.pool import InventoryPool
from netboot.inventory.store import Inventory
from netboot.inventory.windows import BootFile
from tests.conftest import BASE_CONFIG
from tests.support.bootserving import MAC, SECRET, open_window, sample_client

OWNER, OTHER = IPv4Address("198.18.0.10"), IPv4Address("198.18.0.11")


@pytest.fixture
def catalog_for(make_config):
    made = []

    def make(unknown: str = "ignore", *, tokens: bool = True, loader: str = "ipxe") -> Catalog:
        base = BASE_CONFIG.replace("dhcp:\n", f"dhcp:\n  unknown: {unknown}\n")
        config = make_config(f"boot:\n  tokens: {str(tokens).lower()}\n  loader: {loader}\n",
                             base=base)
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
    ("a\0b", "NUL"), ("a\nb", "control"), ("a\x7fb", "control"), ("a\\b", "backslash"),
    ("/etc/passwd", "absolute"),
    ("../x", "'..'"), ("a/../../x", "'..'"),
])
def test_check_name_refuses_each_traversal_form(name: str, reason: str):
    with pytest.raises(AccessDenied, match=reason):
        check_name(name)


def test_check_name_drops_dot_and_empty_components():
    assert check_name("./a//b/.") == ["a", "b"]


def test_client_at_names_the_client_at_an_address(catalog_for):
    catalog = catalog_for()
    assert catalog.client_at(OWNER) == MAC
    assert catalog.client_at(OTHER) is None


def test_a_client_registered_later_is_named_at_the_next_look(catalog_for, monkeypatch):
    catalog = catalog_for()
    assert catalog.client_at(OTHER) is None
    monkeypatch.setattr("netboot.boot.catalog.ADDRESS_BOOK_TTL", 0.0)
    with catalog.inventories.borrow() as inventory, inventory.transaction() as db:
        inventory.insert(db, replace(sample_client(str(OTHER), mac="52:54:00:00:00:99"),
                                     hostname="node-b", initiator_iqn="iqn.2026-11.org.e:b",
                                     target_iqn="iqn.2026-11.org.e:target.b", chap_user="node-b"))
    assert catalog.client_at(OTHER) == "52:54:00:00:00:99"


def test_the_address_book_is_not_read_again_while_the_directory_is_unchanged(catalog_for,
                                                                             monkeypatch):
    catalog = catalog_for()
    assert catalog.client_at(OWNER) == MAC
    monkeypatch.setattr("netboot.boot.catalog.ADDRESS_BOOK_TTL", 0.0)
    with catalog.inventories.borrow() as inventory, inventory.transaction() as db:
        db.execute("DELETE FROM clients")  # behind the directory version's back
    assert catalog.client_at(OWNER) == MAC  # the book read before is kept


def window_of(catalog: Catalog, **kwargs):
    return open_window(catalog.inventories, catalog.config, **kwargs)


def test_script_is_given_with_the_token_of_its_window(catalog_for):
    catalog = catalog_for()
    window = window_of(catalog)
    content = catalog.open(f"clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe", OTHER)
    assert content.source.data.startswith(b"#!ipxe") and content.mac == MAC


def test_script_names_the_client_part_with_the_next_token(catalog_for):
    catalog = catalog_for()
    window = window_of(catalog)
    script = catalog.open(f"clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe", OWNER)
    part = f"clients/{MAC}/{window.tokens[BootFile.CLIENT_PART]}/client.img"
    assert part.encode() in script.source.data
    assert SECRET.encode() in catalog.open(part, OWNER).source.data


def test_a_private_file_without_a_token_is_refused_even_to_its_address(catalog_for):
    catalog = catalog_for()
    window_of(catalog)
    for name in ("boot.ipxe", "client.img"):
        with pytest.raises(AccessDenied, match="no boot token"):
            catalog.open(f"clients/{MAC}/{name}", OWNER)


def test_a_second_use_of_a_token_is_refused_and_names_both_addresses(catalog_for, caplog):
    catalog = catalog_for()
    name = f"clients/{MAC}/{window_of(catalog).tokens[BootFile.CLIENT_PART]}/client.img"
    catalog.open(name, OWNER)
    with caplog.at_level(logging.WARNING), pytest.raises(AccessDenied, match="spent"):
        catalog.open(name, OTHER)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(OWNER) in warning.getMessage() and str(OTHER) in warning.getMessage()
    assert MAC in warning.getMessage()


def test_a_token_is_good_only_for_its_own_file(catalog_for):
    catalog = catalog_for()
    token = window_of(catalog).tokens[BootFile.SCRIPT]
    with pytest.raises(AccessDenied, match="unknown"):
        catalog.open(f"clients/{MAC}/{token}/client.img", OWNER)


def test_a_token_is_good_only_for_its_own_client(catalog_for):
    catalog = catalog_for()
    other = replace(sample_client("198.18.0.12", "52:54:00:00:00:02"), hostname="node-b",
                    initiator_iqn="iqn.2026-11.org.example:node-b",
                    target_iqn="iqn.2026-11.org.example:target.node-b", chap_user="node-b")
    with catalog.inventories.borrow() as inventory, inventory.transaction() as db:
        inventory.insert(db, other)
    token = window_of(catalog, mac=other.mac).tokens[BootFile.CLIENT_PART]
    with pytest.raises(AccessDenied, match="unknown"):
        catalog.open(f"clients/{MAC}/{token}/client.img", OWNER)


def test_the_root_report_closes_the_window_to_its_unspent_tokens(catalog_for):
    catalog = catalog_for()
    token = window_of(catalog).tokens[BootFile.CLIENT_PART]
    catalog.close_window(MAC)
    with pytest.raises(AccessDenied, match="expired"):
        catalog.open(f"clients/{MAC}/{token}/client.img", OWNER)


def test_a_window_past_its_time_refuses_its_tokens(catalog_for):
    catalog = catalog_for()
    window = window_of(catalog, now=time.time() - catalog.config.boot.window - 1)
    with pytest.raises(AccessDenied, match="expired"):
        catalog.open(f"clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe", OWNER)


def test_a_request_waits_while_its_window_is_prepared(catalog_for):
    catalog = catalog_for()
    window = window_of(catalog, ready=False)

    def prepared() -> None:
        time.sleep(0.3)
        with catalog.inventories.borrow() as inventory:
            inventory.window_ready(window.boot_id)

    threading.Thread(target=prepared).start()
    began = time.monotonic()
    catalog.open(f"clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe", OWNER)
    assert time.monotonic() - began >= 0.3


def test_a_look_without_spending_leaves_the_token_good(catalog_for):
    catalog = catalog_for()
    name = f"clients/{MAC}/{window_of(catalog).tokens[BootFile.SCRIPT]}/boot.ipxe"
    catalog.open(name, OWNER, spend=False)
    catalog.open(name, OWNER)
    with pytest.raises(AccessDenied, match="spent"):
        catalog.open(name, OWNER)


# The loader configs with fixed names: boot.loader, the name asked for, its client part's path.
LOADER_CONFIGS = [
    ("pxelinux", "pxelinux.cfg/01-52-54-00-12-34-56",
     "clients/52-54-00-12-34-56/{token}/client.img"),
    ("grub-secureboot", f"grub/clients/x86_64/{MAC}.cfg", f"clients/{MAC}/{{token}}/client.img"),
]


@pytest.mark.parametrize(("loader", "name", "part"), LOADER_CONFIGS, ids=lambda v: v[:8])
def test_loader_config_is_given_once_inside_the_window_with_the_part_token(catalog_for, loader,
                                                                           name, part):
    catalog = catalog_for(loader=loader)
    window = window_of(catalog)
    content = catalog.open(name, OTHER)
    part = part.format(token=window.tokens[BootFile.CLIENT_PART])
    assert part.encode() in content.source.data
    with pytest.raises(AccessDenied, match="spent"):
        catalog.open(name, OTHER)
    assert SECRET.encode() in catalog.open(part, OWNER).source.data


@pytest.mark.parametrize(("loader", "name", "part"), LOADER_CONFIGS, ids=lambda v: v[:8])
def test_loader_config_is_refused_outside_a_window(catalog_for, loader, name, part):
    with pytest.raises(AccessDenied):
        catalog_for(loader=loader).open(name, OWNER)


@pytest.mark.parametrize(("loader", "name", "part"), LOADER_CONFIGS, ids=lambda v: v[:8])
def test_loader_config_is_refused_when_clients_boot_ipxe_scripts(catalog_for, loader, name,
                                                                 part):
    catalog = catalog_for()
    window_of(catalog)
    with pytest.raises(AccessDenied, match=r"boot\.loader is ipxe"):
        catalog.open(name, OWNER)


def test_grub_reads_the_same_grub_cfg_everywhere_and_it_names_the_client_config(catalog_for):
    catalog = catalog_for(loader="grub-secureboot")
    first, second = (catalog.open("grub/grub.cfg", peer).source.data for peer in (OWNER, OTHER))
    assert first == second
    assert b"configfile /grub/clients/${grub_cpu}/${net_default_mac}.cfg\n" in first


def test_grub_cfg_is_netboots_under_any_loader_since_arm64_boots_grub(catalog_for):
    assert b"configfile" in catalog_for().open("grub/grub.cfg", OWNER).source.data


def test_an_arm64_grub_gets_its_config_under_any_loader_with_the_arm64_kernel(catalog_for):
    catalog = catalog_for()
    window = window_of(catalog)
    text = catalog.open(f"grub/clients/arm64/{MAC}.cfg", OTHER).source.data.decode()
    assert "linux /boot/arm64/vmlinuz " in text and "console=ttyAMA0" in text
    part = f"clients/{MAC}/{window.tokens[BootFile.CLIENT_PART]}/client.img"
    assert f"initrd /boot/arm64/initramfs.img /{part}\n" in text


def test_a_grub_of_a_cpu_netboot_does_not_boot_gets_not_found(catalog_for):
    with pytest.raises(NotFound, match="no 'riscv64' machines"):
        catalog_for().open(f"grub/clients/riscv64/{MAC}.cfg", OWNER)


def test_each_architecture_gets_its_own_kernel(catalog_for):
    catalog = catalog_for()
    for arch in Arch:
        path = catalog.config.kernel_file(arch)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(arch.value.encode())
    for name, arch in (("vmlinuz", Arch.AMD64), ("boot/vmlinuz", Arch.AMD64),
                       ("boot/arm64/vmlinuz", Arch.ARM64)):
        assert catalog.open(name, OWNER).source.read(0, 10) == arch.value.encode()


def test_without_tokens_the_client_part_is_rendered_for_its_address(catalog_for):
    content = catalog_for(tokens=False).open(f"clients/{MAC}/client.img", OWNER)
    assert SECRET.encode() in content.source.data
    assert content.mac == MAC


def test_without_tokens_the_client_part_is_refused_to_another_address(catalog_for):
    with pytest.raises(AccessDenied):
        catalog_for(tokens=False).open(f"clients/{MAC}/client.img", OTHER)


def test_without_tokens_the_pxelinux_initrd_path_takes_the_dashed_mac(catalog_for):
    content = catalog_for(tokens=False).open("clients/52-54-00-12-34-56/client.img", OWNER)
    assert content.mac == MAC


def test_unregistered_mac_gets_the_not_registered_script_under_policy_boot(catalog_for):
    catalog = catalog_for("boot")
    content = catalog.open("clients/52:54:00:ab:cd:ef/boot.ipxe", OTHER)
    assert b"not registered: MAC 52:54:00:ab:cd:ef" in content.source.data


def test_unregistered_mac_gets_the_not_registered_grub_config_under_policy_boot(catalog_for):
    catalog = catalog_for("boot", loader="grub-secureboot")
    content = catalog.open("grub/clients/x86_64/52:54:00:ab:cd:ef.cfg", OTHER)
    assert b'echo "netboot: not registered: MAC 52:54:00:ab:cd:ef"' in content.source.data


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
