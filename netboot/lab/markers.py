"""Boot stages as seen on a client's serial console: which line means which stage.

The stages are the ones the server records (:mod:`netboot.inventory.stages`),
so a board can merge both sources. Firmware and iPXE lines are as
SeaBIOS + iPXE ROM, OVMF, iPXE 1.0.0+git-20190125, Debian's shim and GRUB and
the Debian kernel print them (golden captures in tests/lab/data/serial/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netboot.inventory.stages import Stage

# netboot's /init says "netboot[<uptime>]: <what>" (netboot/initramfs/data/init.j2); these lines
# mark stages.
_INIT = re.compile(r"^netboot\[[0-9.]+\]: (.*)$")
_INIT_STAGES: tuple[tuple[Stage, re.Pattern[str]], ...] = (
    (Stage.INITRAMFS, re.compile(r"^initramfs started \((.*)\)")),
    (Stage.NETWORK, re.compile(r"^address (\S+) on")),
    (Stage.LOGIN, re.compile(r"^LUN \S+ is (\S+)")),  # the disk appears once login succeeded
    (Stage.ROOT, re.compile(r"^root (\S+) mounted")),
    (Stage.FAILED, re.compile(r"^FAILED at (.*)")),
)
# The root's own init (the built-in image) says this once it runs.
ROOT_OK = re.compile(r"NETBOOT-ROOT-OK\b\s*(.*)")

# iPXE prints a fetch as "<url>... ok"; a kernel is told apart from a loader by its name.
_FETCH = re.compile(r"((?:https?|tftp)://\S+?)\.\.\. ok\b")
# pxelinux prints "Loading vmlinuz... ok" (its initrd too, which is no stage of its own).
_PXELINUX_LOAD = re.compile(r"^Loading (\S+?)\.\.\. ?ok\b")
_KERNEL_NAME = re.compile(r"/(?:vmlinuz|bzImage|linux)[^/]*$")

_PATTERNS: tuple[tuple[Stage, re.Pattern[str]], ...] = (
    (Stage.DHCP, re.compile(r"^Configuring \(net\d+ [0-9a-f:]{17}\)[. ]*ok\b")),  # iPXE
    (Stage.DHCP, re.compile(r"Station IP address is (\S+)")),  # OVMF's own PXE
    (Stage.DHCP, re.compile(r"^CLIENT IP: (\S+)")),  # a vendor PXE ROM
    (Stage.LOADER, re.compile(r"^PXELINUX \d")),  # pxelinux.0 running
    (Stage.LOADER, re.compile(r"NBP file downloaded successfully")),  # OVMF chain-load
    (Stage.KERNEL, re.compile(r"Linux version (\S+)")),
    # iPXE wraps its error at 80 columns: "No configuration methods" ends a line.
    (Stage.FAILED, re.compile(r"No configuration methods|Nothing to boot|Could not boot|"
                              r"No bootable device|"
                              r"Kernel panic - not syncing.*")),
    # Secure Boot refusing an image: GRUB a kernel that fails shim's check, shim a GRUB
    (Stage.FAILED, re.compile(r"bad shim signature|Verification failed: .*")),
)


@dataclass(frozen=True)
class Marker:
    """A stage reached, with what the line said about it (address, URL, detail)."""

    stage: Stage
    detail: str = ""


def classify(line: str) -> Marker | None:
    """The stage ``line`` shows, or None for an ordinary console line."""
    if m := ROOT_OK.search(line):
        return Marker(Stage.ROOT, m.group(1).strip())
    if init := _INIT.match(line):
        for stage, pattern in _INIT_STAGES:
            if m := pattern.match(init.group(1)):
                return Marker(stage, m.group(1).strip())
        return None
    if m := _FETCH.search(line):
        url = m.group(1)
        return Marker(Stage.KERNEL if _KERNEL_NAME.search(url) else Stage.LOADER, url)
    if (m := _PXELINUX_LOAD.search(line)) and _KERNEL_NAME.search("/" + m.group(1)):
        return Marker(Stage.KERNEL, m.group(1))
    for stage, pattern in _PATTERNS:
        if m := pattern.search(line):
            return Marker(stage, (m.group(1) if pattern.groups else m.group(0)).strip())
    return None
