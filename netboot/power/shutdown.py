"""Powering a machine off softly, as a decision without I/O: ask its OS to shut down (an
ACPI power-button press through the BMC, IPMI's ``chassis power soft``), wait for the
power to go off, and force it off (``chassis power off``) when the OS has not shut down
within the timeout, or at once when asked for a hard off.

:func:`next_step` takes what is known (the sequence so far, the power state the BMC just
reported, the time) and says what to do next; :mod:`netboot.power.control` does it and
asks again, so every branch is tested on plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from netboot.power.bmc import PowerState

SOFT_TIMEOUT = 120.0  # seconds an OS gets to shut down before its power is cut


class OffStep(Enum):
    """What to do next to get a machine off."""

    ASK = "ask the OS to shut down"  # chassis power soft: the ACPI power button
    WAIT = "wait for the OS to shut down"
    FORCE = "cut the power"  # chassis power off
    DONE = "off"


@dataclass(frozen=True)
class SoftOff:
    """One machine's power-off so far."""

    timeout: float = SOFT_TIMEOUT
    hard: bool = False  # no soft step: cut the power at once
    asked_at: float | None = None  # when the OS was asked to shut down
    refused: str | None = None  # the BMC's error when it refused the soft request
    forced: bool = False  # the power was cut (which ends the sequence)


def next_step(off: SoftOff, power: PowerState, now: float) -> OffStep:
    """The next step of ``off``, with the machine's ``power`` read at ``now``."""
    if power is PowerState.OFF:
        return OffStep.DONE
    if off.hard or off.refused is not None:
        return OffStep.FORCE
    if off.asked_at is None:
        return OffStep.ASK
    if now - off.asked_at < off.timeout:
        return OffStep.WAIT
    return OffStep.FORCE


def outcome(off: SoftOff, now: float) -> str:
    """What the finished sequence ``off`` did, for people."""
    if not off.forced:
        return "was off" if off.asked_at is None else \
            f"shut down by its OS in {now - off.asked_at:.0f} s"
    if off.hard:
        return "powered off (hard)"
    if off.refused is not None:
        return f"powered off (hard): the BMC refused a soft shutdown ({off.refused})"
    return f"powered off (hard): its OS had not shut down within {off.timeout:.0f} s"
