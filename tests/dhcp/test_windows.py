"""Boot windows opened by the DHCP engine: which exchanges open one, and the token it names."""

from __future__ import annotations

import logging

import pytest

from netboot.dhcp.service import DhcpEngine
from netboot.inventory.store import Inventory
from netboot.inventory.windows import BootFile
from netboot.provisioning.clients import add_client
from tests.conftest import BASE_CONFIG
from tests.support.dhcp_frames import decode, intel_rom, ipxe_bios, options, plain

MAC = "52:54:00:12:34:56"
NOW = 1_800_000_000.0
ROM_PORT = ("0.0.0.0", 68)


def make_engine(make_config, extra: str = "", dhcp: str = "") -> DhcpEngine:
    config = make_config(extra, base=BASE_CONFIG.replace(
        "  subnet: 198.18.0.0/24\n", f"  subnet: 198.18.0.0/24\n  unknown: boot\n{dhcp}"))
    inventory = Inventory(config.storage.database)
    add_client(config, inventory, MAC)
    return DhcpEngine(config, inventory, NOW, record_stage=lambda *_: None)


@pytest.fixture
def engine(make_config):
    """An engine as serve runs it with tokens, on a target netboot manages."""
    made = make_engine(make_config)
    yield made
    made.inventory.close()


def windows_opened(engine: DhcpEngine) -> int:
    return engine.inventory.query("SELECT count(*) FROM boot_windows")[0][0]


def boot_file(out) -> str:
    return options(decode(out[0]))[67].decode()


def test_an_ipxe_exchange_names_the_script_with_its_windows_token(engine):
    out = engine.handle(ipxe_bios(MAC), ROM_PORT, 67, NOW)
    window = engine.inventory.current_window(MAC)
    assert windows_opened(engine) == 1
    assert boot_file(out).endswith(f"/clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe")


def test_the_rom_and_ipxe_exchanges_of_one_boot_share_one_window(engine):
    engine.handle(intel_rom(MAC), ROM_PORT, 67, NOW)
    engine.handle(intel_rom(MAC, "request"), ROM_PORT, 67, NOW)
    first = boot_file(engine.handle(ipxe_bios(MAC), ROM_PORT, 67, NOW + 2))
    again = boot_file(engine.handle(ipxe_bios(MAC, xid=7), ROM_PORT, 67, NOW + 3))
    assert windows_opened(engine) == 1 and first == again


def test_an_exchange_after_a_spent_file_opens_a_new_window(engine):
    engine.handle(ipxe_bios(MAC), ROM_PORT, 67, NOW)
    old = engine.inventory.current_window(MAC)
    engine.inventory.window_ready(old.boot_id)
    engine.inventory.spend_token(old.tokens[BootFile.SCRIPT], MAC, BootFile.SCRIPT,
                                 "198.18.0.10", NOW + 1)
    out = engine.handle(ipxe_bios(MAC, xid=9), ROM_PORT, 67, NOW + 5)
    new = engine.inventory.current_window(MAC)
    assert windows_opened(engine) == 2 and new.boot_id != old.boot_id
    assert new.tokens[BootFile.SCRIPT] in boot_file(out)


def test_a_window_waits_for_its_preparation(engine):
    engine.handle(ipxe_bios(MAC), ROM_PORT, 67, NOW)
    assert not engine.inventory.current_window(MAC).ready


def test_a_window_on_a_target_netboot_does_not_manage_is_ready_at_once(make_config):
    engine = make_engine(make_config, "target:\n  manage: false\n")
    engine.handle(ipxe_bios(MAC), ROM_PORT, 67, NOW)
    assert engine.inventory.current_window(MAC).ready
    engine.inventory.close()


def test_a_booted_systems_dhcp_client_opens_no_window(engine):
    out = engine.handle(plain(MAC), ROM_PORT, 67, NOW)
    assert out is not None and windows_opened(engine) == 0


def test_an_unregistered_machine_opens_no_window(engine):
    out = engine.handle(ipxe_bios("52:54:00:00:00:99"), ROM_PORT, 67, NOW)
    assert "/clients/52:54:00:00:00:99/boot.ipxe" in boot_file(out)
    assert windows_opened(engine) == 0


def test_the_log_line_shows_no_token(engine, caplog):
    with caplog.at_level(logging.DEBUG, logger="netboot"):
        engine.handle(ipxe_bios(MAC, "request", extra=[("requested_addr", "198.18.0.2")]),
                      ROM_PORT, 67, NOW)
    window = engine.inventory.current_window(MAC)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "<token>" in logged and window.tokens[BootFile.SCRIPT] not in logged


def test_in_proxy_mode_the_token_in_the_boot_file_is_what_proves_the_boot(make_config):
    proxy = make_engine(make_config, dhcp="  mode: proxy\n")
    out = proxy.handle(ipxe_bios(MAC, "request", ciaddr="198.18.0.77"), ("198.18.0.77", 68),
                       4011, NOW)
    window = proxy.inventory.current_window(MAC)
    assert boot_file(out).endswith(f"/{window.tokens[BootFile.SCRIPT]}/boot.ipxe")
    proxy.inventory.close()
