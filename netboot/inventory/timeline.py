"""A client's recent boots, cut out of its stage log: what the admin page draws to scale
and ``/metrics`` reports as seconds to each stage.

The inventory keeps every stage a client reached (``stage_log``), not only the last
one; :func:`split_boots` decides, without I/O, where one boot ends and the next begins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netboot.inventory.stages import Stage

KEPT_ROWS = 100  # stages of one client the log keeps: ten or more boots
SHOWN_BOOTS = 5  # boots of one client the admin page and API show
NEW_BOOT_GAP = 600.0  # seconds of silence after which the next stage starts a new boot
# A DHCP after these stages is the same boot: iPXE asking again after the ROM's loader, or
# /init's udhcpc after the kernel was fetched (/init reports initramfs only once udhcpc gave
# it an address). After any other stage it is a reboot.
_SAME_BOOT_BEFORE_DHCP = frozenset({Stage.DHCP, Stage.LOADER, Stage.KERNEL, Stage.INITRAMFS})


@dataclass(frozen=True)
class Boot:
    """One boot: the first time it reached each stage, in the order reached."""

    started: float
    reached: tuple[tuple[Stage, float], ...]

    @property
    def last(self) -> Stage:
        return self.reached[-1][0]

    def seconds(self) -> dict[Stage, float]:
        """Seconds from the boot's start to each stage it reached."""
        return {stage: at - self.started for stage, at in self.reached}


def _new_boot(previous: Stage, previous_at: float, stage: Stage, at: float) -> bool:
    if at - previous_at > NEW_BOOT_GAP:
        return True
    return stage is Stage.DHCP and previous not in _SAME_BOOT_BEFORE_DHCP


def split_boots(log: Iterable[tuple[Stage, float]]) -> list[Boot]:
    """Boots from a client's stage log in time order, oldest first; within a boot a stage
    seen again (iPXE's second DHCP and loader) keeps its first time."""
    boots: list[list[tuple[Stage, float]]] = []
    previous: tuple[Stage, float] | None = None
    for stage, at in log:
        if previous is None or _new_boot(*previous, stage, at):
            boots.append([])
        if all(seen is not stage for seen, _ in boots[-1]):
            boots[-1].append((stage, at))
        previous = (stage, at)
    return [Boot(started=b[0][1], reached=tuple(b)) for b in boots]
