"""Power control against a real BMC: OpenIPMI's ipmi_sim in a namespace of the test's, with a
trivial chassis_control (see tests.support.bmc), through the real ipmitool."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from netboot.inventory.store import open_inventory
from netboot.power.bmc import BmcError, PowerAction, PowerState
from netboot.power.control import power
from netboot.power.ipmi import IpmiTool
from netboot.provisioning.clients import add_client
from netboot.provisioning.power import power_clients, set_client_bmc
from tests.conftest import needs_root
from tests.support.bmc import SimulatedBmc, processes_watched, simulated_bmc

pytestmark = [pytest.mark.root, needs_root]

PASSWORD = "Pw-4a7c91e2d05b"


@pytest.fixture
def sim(network, tmp_path: Path) -> Iterator[SimulatedBmc]:
    netns, address = network
    with simulated_bmc(netns, address, tmp_path / "bmc", PASSWORD) as bmc:
        yield bmc


def test_power_on_off_and_status_through_a_real_bmc(sim):
    tool = IpmiTool(sim.bmc)
    assert tool.status() is PowerState.OFF
    tool.on()
    assert tool.status() is PowerState.ON
    tool.off()
    assert tool.status() is PowerState.OFF
    assert "set power 1" in sim.calls() and "set power 0" in sim.calls()


def test_cycle_of_a_machine_that_is_off_sets_network_boot_then_powers_it_on(sim):
    result = power(sim.bmc, PowerAction.CYCLE)
    assert (result.state, result.done) == (PowerState.ON,
                                           "was off: powered on, booting from the network")
    calls = sim.calls()
    assert calls.index("set boot pxe") < calls.index("set power 1")
    assert "set power 0" not in calls


def test_cycle_of_a_running_machine_turns_it_off_and_on_again(sim):
    power(sim.bmc, PowerAction.ON)
    result = power(sim.bmc, PowerAction.CYCLE)
    assert result.done == "power cycled, booting from the network"
    calls = sim.calls()
    assert calls.index("set boot pxe") < calls.index("set power 0")


def test_off_asks_the_os_through_chassis_power_soft_first(sim):
    power(sim.bmc, PowerAction.ON)
    result = power(sim.bmc, PowerAction.OFF)
    assert result.state is PowerState.OFF and result.done.startswith("shut down by its OS in")
    assert "set shutdown 1" in sim.calls() and "set power 0" not in sim.calls()


def test_off_cuts_the_power_of_an_os_that_does_not_shut_down(sim):
    (sim.directory / "deaf").touch()
    power(sim.bmc, PowerAction.ON)
    result = power(sim.bmc, PowerAction.OFF, soft_timeout=1)
    assert result.done == "powered off (hard): its OS had not shut down within 1 s"
    calls = sim.calls()
    assert calls.index("set shutdown 1") < calls.index("set power 0")


def test_next_boot_from_the_network_alone(sim):
    assert power(sim.bmc, PowerAction.PXE).done == "next boot from the network"
    assert (sim.directory / "boot").read_text().strip() == "pxe"


def test_a_wrong_password_is_one_clear_error(sim):
    wrong = replace(sim.bmc, password="not-the-password")
    with pytest.raises(BmcError) as raised:
        IpmiTool(wrong).status()
    assert str(raised.value) == (f"BMC {sim.bmc.address}:623 refused user admin: "
                                 "wrong password?")


def test_an_unknown_user_is_named(sim):
    with pytest.raises(BmcError, match=f"BMC {sim.bmc.address}:623 has no user nobody"):
        IpmiTool(replace(sim.bmc, username="nobody")).status()


def test_bootdev_refused_by_a_bmc_that_exits_0_is_an_error(network, tmp_path):
    netns, address = network
    bare = simulated_bmc(netns, address, tmp_path / "bare", PASSWORD, port=1623, control=False)
    with bare as sim, pytest.raises(BmcError, match="did not set the next boot to the network"):
        power(sim.bmc, PowerAction.CYCLE)


def test_the_password_is_in_no_process_argv_or_environment_during_the_calls(sim):
    with processes_watched(PASSWORD.encode()) as watch:
        for action in (PowerAction.STATUS, PowerAction.ON, PowerAction.CYCLE, PowerAction.OFF,
                       PowerAction.STATUS) * 3:
            power(sim.bmc, action)
    assert watch.programs["ipmitool"] > 0, "the scan never caught ipmitool running"
    assert not watch.leaks, watch.leaks


def test_the_password_file_is_removed_after_each_call(sim):
    before = set(Path(tempfile.gettempdir()).glob("netboot-bmc-*"))
    power(sim.bmc, PowerAction.STATUS)
    with pytest.raises(BmcError):
        power(replace(sim.bmc, password="wrong"), PowerAction.STATUS)
    assert set(Path(tempfile.gettempdir()).glob("netboot-bmc-*")) == before


def test_the_password_is_never_logged(sim, caplog, make_config):
    caplog.set_level(logging.DEBUG, logger="netboot")
    config = make_config()
    with open_inventory(config) as inventory:
        mac = add_client(config, inventory, "52:54:00:00:00:07").client.mac
        set_client_bmc(inventory, mac, sim.bmc)
        done = power_clients(inventory, [mac], PowerAction.CYCLE)
        wrong = replace(sim.bmc, password="wrong-" + PASSWORD)
        set_client_bmc(inventory, mac, wrong)
        failed = power_clients(inventory, [mac], PowerAction.STATUS)
    assert done[0].ok and not failed[0].ok
    assert mac in caplog.text and "wrong password?" in caplog.text
    assert PASSWORD not in caplog.text
