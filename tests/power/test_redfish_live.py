"""Power control against a real Redfish service: sushy-tools' emulator with its fake systems
driver, over HTTPS with a certificate of the test's CA and basic authentication, in a
namespace of the test's (tests.support.redfish), through netboot's Redfish driver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from netboot.inventory.store import open_inventory
from netboot.power.bmc import BmcError, PowerAction, PowerState
from netboot.power.control import power
from netboot.power.redfish import RedfishSystem
from netboot.provisioning.clients import add_client
from netboot.provisioning.power import power_clients, set_client_bmc
from tests.conftest import needs_root
from tests.support.bmc import processes_watched
from tests.support.redfish import PORT, EmulatedBmc, emulated_bmc
from tests.support.waiting import eventually

pytestmark = [pytest.mark.root, needs_root]

PASSWORD = "Rf-9c1d47e2a0b3"
SETTLE = 30.0  # seconds: the fake driver applies a power change 1 to 11 s after it is asked


@pytest.fixture
def emulator(network, tmp_path: Path) -> Iterator[EmulatedBmc]:
    netns, address = network
    with emulated_bmc(netns, address, tmp_path / "redfish", PASSWORD) as emulated:
        yield emulated


def _becomes(system: RedfishSystem, state: PowerState) -> bool:
    return eventually(lambda: system.status() is state, SETTLE)


def test_power_on_off_and_status_through_a_real_redfish_service(emulator):
    system = RedfishSystem(emulator.bmc)
    assert system.status() is PowerState.OFF
    assert power(emulator.bmc, PowerAction.ON).done == "powered on"
    assert _becomes(system, PowerState.ON)
    assert emulator.system()["PowerState"] == "On"
    power(emulator.bmc, PowerAction.OFF, hard=True)
    assert _becomes(system, PowerState.OFF)
    assert 'power state set to "On"' in emulator.log
    assert 'power state set to "ForceOff"' in emulator.log


def test_off_asks_the_os_to_shut_down_first(emulator):
    system = RedfishSystem(emulator.bmc)
    system.on()
    assert _becomes(system, PowerState.ON)
    result = power(emulator.bmc, PowerAction.OFF, soft_timeout=SETTLE)
    assert result.done.startswith("shut down by its OS in ")
    assert 'power state set to "GracefulShutdown"' in emulator.log
    assert "ForceOff" not in emulator.log


def test_cycle_of_a_running_machine_is_a_forced_restart_after_network_boot_is_set(emulator):
    system = RedfishSystem(emulator.bmc)
    system.on()
    assert _becomes(system, PowerState.ON)
    result = power(emulator.bmc, PowerAction.CYCLE)
    assert result.done == "power cycled, booting from the network"
    log = emulator.log
    # the emulator allows no PowerCycle: ForceRestart is the next best
    assert log.index('Set boot device to "Pxe"') < log.index('power state set to '
                                                             '"ForceRestart"')
    assert _becomes(system, PowerState.ON)


def test_cycle_of_a_machine_that_is_off_powers_it_on(emulator):
    result = power(emulator.bmc, PowerAction.CYCLE)
    assert result.done == "was off: powered on, booting from the network"
    assert 'power state set to "On"' in emulator.log
    assert "ForceRestart" not in emulator.log


def test_next_boot_from_the_network_shows_in_the_systems_resource(emulator):
    assert emulator.system()["Boot"]["BootSourceOverrideTarget"] == "Hdd"
    assert power(emulator.bmc, PowerAction.PXE).done == "next boot from the network"
    assert emulator.system()["Boot"]["BootSourceOverrideTarget"] == "Pxe"


def test_the_system_may_be_named_in_the_url(emulator):
    system = emulator.system()["@odata.id"]
    assert RedfishSystem(replace(emulator.bmc, system=system)).status() is PowerState.OFF
    with pytest.raises(BmcError, match=f"BMC {emulator.bmc.where}: Resource .*/redfish/v1/"
                                       "Systems/nope not found \\(check the system's path"):
        RedfishSystem(replace(emulator.bmc, system="/redfish/v1/Systems/nope")).status()


def test_a_bmc_of_several_systems_wants_one_named(network, tmp_path):
    netns, address = network
    with emulated_bmc(netns, address, tmp_path / "two", PASSWORD, systems=2) as two, \
            pytest.raises(BmcError, match=r"has 2 systems .*: name one in its URL"):
        RedfishSystem(two.bmc).status()


def test_a_wrong_password_is_one_clear_error(emulator):
    with pytest.raises(BmcError) as raised:
        RedfishSystem(replace(emulator.bmc, password="not-the-password")).status()
    assert str(raised.value) == (f"BMC {emulator.bmc.address}:{PORT} refused user admin: "
                                 "wrong user name or password?")


def test_a_certificate_of_an_unknown_ca_is_refused_unless_its_ca_is_given_or_insecure(
        emulator):
    untrusted = replace(emulator.bmc, ca_pem=None)
    with pytest.raises(BmcError, match=r"its TLS certificate is not trusted .*--bmc-ca-file, "
                                       r"or --bmc-insecure"):
        RedfishSystem(untrusted).status()
    assert RedfishSystem(replace(untrusted, insecure=True)).status() is PowerState.OFF


def test_a_port_nothing_serves_is_named(emulator):
    with pytest.raises(BmcError, match=f"BMC {emulator.bmc.address}:{PORT + 1} refused the "
                                       "connection: nothing serves Redfish at this port"):
        RedfishSystem(replace(emulator.bmc, port=PORT + 1)).status()


def test_the_password_is_in_no_process_argv_nor_environment_nor_any_log(emulator, caplog,
                                                                          make_config):
    caplog.set_level(logging.DEBUG)  # sushy's own DEBUG lines too
    config = make_config()
    with processes_watched(PASSWORD.encode()) as watch, open_inventory(config) as inventory:
        mac = add_client(config, inventory, "52:54:00:00:00:08").client.mac
        set_client_bmc(inventory, mac, emulator.bmc)
        done = [power_clients(inventory, [mac], action)[0]
                for action in (PowerAction.STATUS, PowerAction.CYCLE, PowerAction.OFF)]
        set_client_bmc(inventory, mac, replace(emulator.bmc, password="wrong-" + PASSWORD))
        failed = power_clients(inventory, [mac], PowerAction.STATUS)[0]
    assert all(d.ok for d in done), done
    assert failed.error == (f"client {mac}: BMC {emulator.bmc.where} refused user admin: "
                            "wrong user name or password?")
    assert "sushy" in {r.name.split(".")[0] for r in caplog.records}, "sushy's log not seen"
    assert mac in caplog.text
    assert not watch.leaks, watch.leaks
    assert PASSWORD not in caplog.text
    assert PASSWORD not in emulator.log
