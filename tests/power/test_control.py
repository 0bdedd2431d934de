"""Which driver talks to a BMC (and a netboot without sushy, the extra redfish); power
actions built from a BMC's commands, on a scripted BMC (no ipmitool)."""

from __future__ import annotations

import sys

import pytest

from netboot.power.bmc import Bmc, BmcError, BmcKind, PowerAction, PowerState
from netboot.power.control import driver, power, power_off
from netboot.power.ipmi import IpmiTool
from netboot.power.redfish import RedfishSystem

BMC = Bmc(address="198.18.0.5", username="admin", password="pw", port=6231)
IPMI = Bmc("198.18.0.5", "admin", "pw", 623, BmcKind.IPMI)
REDFISH = Bmc("198.18.0.5", "admin", "pw", 443, BmcKind.REDFISH)


def test_each_kind_of_bmc_has_its_driver():
    assert isinstance(driver(IPMI), IpmiTool)
    assert isinstance(driver(REDFISH), RedfishSystem)


def test_without_sushy_a_redfish_bmc_says_what_to_install_and_ipmi_still_works(monkeypatch):
    monkeypatch.setitem(sys.modules, "sushy", None)  # import sushy: ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "netboot.power.redfish")
    with pytest.raises(BmcError, match=r"BMC 198.18.0.5:443 speaks Redfish, which needs the "
                                       r"Python package sushy >= 5.14 \(pip install "
                                       r"'netboot\[redfish\]'\)"):
        driver(REDFISH)
    assert isinstance(driver(IPMI), IpmiTool)


class ScriptedBmc:
    """A machine whose OS powers off ``shuts_down_after`` seconds after a soft request
    (never, if None); a clock it and the caller share."""

    def __init__(self, clock: list[float], shuts_down_after: float | None = 5,
                 soft_refused: bool = False, on: bool = True) -> None:
        self.clock, self.after, self.refused = clock, shuts_down_after, soft_refused
        self.on, self.asked_at, self.calls = on, None, []

    def status(self) -> PowerState:
        self.calls.append("status")
        if self.asked_at is not None and self.after is not None \
                and self.clock[0] - self.asked_at >= self.after:
            self.on = False
        return PowerState.ON if self.on else PowerState.OFF

    def soft(self) -> None:
        self.calls.append("soft")
        if self.refused:
            raise BmcError("BMC 198.18.0.5:6231: Invalid data field")
        self.asked_at = self.clock[0]

    def off(self) -> None:
        self.calls.append("off")
        self.on = False


def _run(machines: list[ScriptedBmc], clock: list[float], **options) -> list[str]:
    tools = iter(machines)

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return power_off([BMC] * len(machines), connect=lambda _: next(tools),
                     clock=lambda: clock[0], sleep=sleep, **options)


def test_an_os_that_shuts_down_is_never_cut_off():
    clock = [0.0]
    machine = ScriptedBmc(clock, shuts_down_after=5)
    assert _run([machine], clock, soft_timeout=60) == ["shut down by its OS in 5 s"]
    assert "off" not in machine.calls and machine.calls.count("soft") == 1


def test_an_os_that_ignores_the_request_is_cut_off_at_the_timeout():
    clock = [0.0]
    machine = ScriptedBmc(clock, shuts_down_after=None)
    assert _run([machine], clock, soft_timeout=10) == [
        "powered off (hard): its OS had not shut down within 10 s"]
    assert machine.calls[-1] == "off" and clock[0] >= 10


def test_hard_never_asks_the_os():
    clock = [0.0]
    machine = ScriptedBmc(clock)
    assert _run([machine], clock, hard=True) == ["powered off (hard)"]
    assert "soft" not in machine.calls


def test_a_batch_waits_for_its_slowest_os_once_not_one_after_the_other():
    clock = [0.0]
    machines = [ScriptedBmc(clock, shuts_down_after=20), ScriptedBmc(clock, shuts_down_after=20),
                ScriptedBmc(clock, on=False)]
    assert _run(machines, clock, soft_timeout=60) == [
        "shut down by its OS in 20 s", "shut down by its OS in 20 s", "was off"]
    assert clock[0] < 25


def test_a_bmc_that_refuses_the_soft_request_has_the_power_cut():
    clock = [0.0]
    machine = ScriptedBmc(clock, soft_refused=True)
    took, = _run([machine], clock)
    assert took.startswith("powered off (hard): the BMC refused a soft shutdown")
    assert machine.calls[-1] == "off"


def test_power_off_reports_the_machine_off_and_how():
    clock = [0.0]
    machine = ScriptedBmc(clock, on=False)
    result = power(BMC, PowerAction.OFF, lambda _: machine)
    assert (result.state, result.done) == (PowerState.OFF, "was off")
