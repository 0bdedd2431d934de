"""The power actions, built from a BMC's commands: on, off, status, next boot from the
network, and a cycle that always ends in a network boot. Every kind of BMC has a driver
with those five commands (:class:`PowerDriver`); the actions are the same for all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from netboot.power.bmc import Bmc, BmcError, BmcKind, PowerAction, PowerState
from netboot.power.ipmi import IpmiTool

SUSHY_MIN = "5.14"  # pyproject.toml's extra redfish: tested, with connect and read timeouts


class PowerDriver(Protocol):
    """What a BMC is asked, whatever it speaks; each raises BmcError naming the BMC."""

    def status(self) -> PowerState: ...

    def on(self) -> None: ...

    def off(self) -> None: ...

    def cycle(self) -> None:
        """Off and on again (or a hard reset): the machine must be on."""

    def boot_from_network(self) -> None:
        """The next boot (only) from the network."""


@dataclass(frozen=True)
class PowerResult:
    """What an action did, and the machine's power afterwards (as the BMC reported it, or
    as the command left it)."""

    action: PowerAction
    state: PowerState | None  # None for PXE: the power was not asked
    done: str  # for people: "powered on", "was off: powered on", ...


def driver(bmc: Bmc) -> PowerDriver:
    """What talks to ``bmc``: ipmitool for IPMI, sushy for Redfish.

    sushy is imported only for a Redfish BMC: a netboot without it (Debian 12's
    python3-sushy is too old: no connect or read timeouts) still runs, and drives
    IPMI BMCs."""
    match bmc.kind:
        case BmcKind.IPMI:
            return IpmiTool(bmc)
        case BmcKind.REDFISH:
            try:
                from netboot.power.redfish import RedfishSystem  # sushy: for Redfish only
            except ModuleNotFoundError as err:
                raise BmcError(f"BMC {bmc.where} speaks Redfish, which needs the Python "
                               f"package sushy >= {SUSHY_MIN} (pip install 'netboot[redfish]'): "
                               f"{err}") from None
            return RedfishSystem(bmc)
    raise AssertionError(bmc.kind)


def power(bmc: Bmc, action: PowerAction,
          connect: Callable[[Bmc], PowerDriver] = driver) -> PowerResult:
    """Do ``action`` through ``bmc``.

    CYCLE sets the next boot to the network first (one-shot), then power-cycles
    a machine that is on, and powers on one that is off (a BMC refuses to cycle a
    machine that is off).
    """
    tool = connect(bmc)
    match action:
        case PowerAction.STATUS:
            return PowerResult(action, tool.status(), "read")
        case PowerAction.ON:
            tool.on()
            return PowerResult(action, PowerState.ON, "powered on")
        case PowerAction.OFF:
            tool.off()
            return PowerResult(action, PowerState.OFF, "powered off")
        case PowerAction.PXE:
            tool.boot_from_network()
            return PowerResult(action, None, "next boot from the network")
        case PowerAction.CYCLE:
            tool.boot_from_network()
            if tool.status() is PowerState.OFF:
                tool.on()
                return PowerResult(action, PowerState.ON,
                                   "was off: powered on, booting from the network")
            tool.cycle()
            return PowerResult(action, PowerState.ON,
                               "power cycled, booting from the network")
    raise AssertionError(action)
