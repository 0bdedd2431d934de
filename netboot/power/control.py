"""The power actions, built from a BMC's commands: on, off, status, next boot from the
network, and a cycle that always ends in a network boot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from netboot.power.bmc import Bmc, BmcKind, PowerAction, PowerState
from netboot.power.ipmi import IpmiTool


@dataclass(frozen=True)
class PowerResult:
    """What an action did, and the machine's power afterwards (as the BMC reported it, or
    as the command left it)."""

    action: PowerAction
    state: PowerState | None  # None for PXE: the power was not asked
    done: str  # for people: "powered on", "was off: powered on", ...


def adapter(bmc: Bmc) -> IpmiTool:
    """What talks to ``bmc``: ipmitool for IPMI (the only kind so far)."""
    if bmc.kind is BmcKind.IPMI:
        return IpmiTool(bmc)
    raise NotImplementedError(bmc.kind)  # a new kind needs its adapter here


def power(bmc: Bmc, action: PowerAction,
          connect: Callable[[Bmc], IpmiTool] = adapter) -> PowerResult:
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
