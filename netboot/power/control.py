"""The power actions, built from a BMC's commands: on, status, next boot from the network,
a cycle that always ends in a network boot, and off: the OS asked to shut down first, the
power cut if it has not within a timeout (the sequence decided by
:mod:`netboot.power.shutdown`). Every kind of BMC has a driver with those six commands
(:class:`PowerDriver`); the actions are the same for all."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from netboot.power.bmc import Bmc, BmcError, BmcKind, PowerAction, PowerState
from netboot.power.ipmi import IpmiTool
from netboot.power.shutdown import SOFT_TIMEOUT, OffStep, SoftOff, next_step, outcome

SUSHY_MIN = "5.14"  # pyproject.toml's extra redfish: tested, with connect and read timeouts
POLL = 1.0  # seconds between two reads of the power of machines shutting down


class PowerDriver(Protocol):
    """What a BMC is asked, whatever it speaks; each raises BmcError naming the BMC."""

    def status(self) -> PowerState: ...

    def on(self) -> None: ...

    def off(self) -> None:
        """The power cut at once."""

    def soft(self) -> None:
        """The OS asked to shut down (the ACPI power button); returns at once."""

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


def power_off(bmcs: Sequence[Bmc], *, hard: bool = False, soft_timeout: float = SOFT_TIMEOUT,
              connect: Callable[[Bmc], PowerDriver] = driver,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Power every machine of ``bmcs`` off, all at once: each one's OS is asked to shut
    down (unless ``hard``) and its power cut if it is not off ``soft_timeout`` seconds
    later; what each took, in order ("shut down by its OS in 9 s", "was off", ...).
    A BMC that refuses the soft request has the power cut at once."""
    tools = [connect(bmc) for bmc in bmcs]
    sequences = [SoftOff(soft_timeout, hard)] * len(tools)
    done: list[str | None] = [None] * len(tools)
    while True:
        waiting = False
        for i, tool in enumerate(tools):
            if done[i] is not None:
                continue
            now = clock()
            match next_step(sequences[i], tool.status(), now):
                case OffStep.DONE:
                    done[i] = outcome(sequences[i], now)
                case OffStep.ASK:
                    try:
                        tool.soft()
                        sequences[i] = replace(sequences[i], asked_at=now)
                    except BmcError as err:
                        sequences[i] = replace(sequences[i], refused=str(err))
                    waiting = True
                case OffStep.FORCE:
                    tool.off()
                    sequences[i] = replace(sequences[i], forced=True)
                    done[i] = outcome(sequences[i], now)
                case OffStep.WAIT:
                    waiting = True
        if all(took is not None for took in done):
            return [took for took in done if took is not None]
        if waiting:
            sleep(POLL)


def power(bmc: Bmc, action: PowerAction, connect: Callable[[Bmc], PowerDriver] = driver, *,
          hard: bool = False, soft_timeout: float = SOFT_TIMEOUT) -> PowerResult:
    """Do ``action`` through ``bmc``.

    CYCLE sets the next boot to the network first (one-shot), then power-cycles
    a machine that is on, and powers on one that is off (a BMC refuses to cycle a
    machine that is off). OFF asks the OS to shut down first (:func:`power_off`;
    ``hard``: the power is cut at once).
    """
    if action is PowerAction.OFF:
        took, = power_off([bmc], hard=hard, soft_timeout=soft_timeout, connect=connect)
        return PowerResult(action, PowerState.OFF, took)
    tool = connect(bmc)
    match action:
        case PowerAction.STATUS:
            return PowerResult(action, tool.status(), "read")
        case PowerAction.ON:
            tool.on()
            return PowerResult(action, PowerState.ON, "powered on")
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
