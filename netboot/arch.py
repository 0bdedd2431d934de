"""The CPU architectures netboot boots, by their Debian names, and what differs between them.

One home for the facts that tell an x86-64 client's boot from an ARM64 one's: the ELF
machine its programs are built for, the library directory of its Debian packages, its
serial console, the name its GRUB gives its own CPU, and its kernel flavour. The files of
two architectures never share a name: where each lives is decided in
:mod:`netboot.boot.urls` (served names) and :class:`netboot.config.Config` (state).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from enum import StrEnum


class Arch(StrEnum):
    """A Debian architecture (``dpkg --print-architecture``)."""

    AMD64 = "amd64"
    ARM64 = "arm64"


# ELF e_machine values (System V ABI; Linux include/uapi/linux/elf-em.h)
EM_X86_64 = 62
EM_AARCH64 = 183


@dataclass(frozen=True)
class ArchFacts:
    elf_machine: int
    triplet: str  # Debian's multiarch library directory (lib/<triplet>)
    console: str  # the serial console of its machines (QEMU's pc and virt; most servers)
    grub_cpu: str  # GRUB's $grub_cpu on it, which names its per-client config
    kernel_flavour: str  # the Debian kernel flavour a client boots


FACTS = {
    Arch.AMD64: ArchFacts(EM_X86_64, "x86_64-linux-gnu", "ttyS0", "x86_64", "cloud-amd64"),
    # the PL011 UART of QEMU's virt machine and of most ARM64 servers (SBSA)
    Arch.ARM64: ArchFacts(EM_AARCH64, "aarch64-linux-gnu", "ttyAMA0", "arm64", "cloud-arm64"),
}
_MACHINES = {"x86_64": Arch.AMD64, "aarch64": Arch.ARM64}


def host_arch() -> Arch:
    """The architecture this machine runs: its own programs build the initramfs of it."""
    return _MACHINES[platform.machine()]


def by_grub_cpu(name: str) -> Arch | None:
    """The architecture whose GRUB calls its CPU ``name``, or None."""
    return next((a for a, f in FACTS.items() if f.grub_cpu == name), None)


def by_flavour(flavour: str) -> Arch:
    """The architecture of a Debian kernel flavour (``cloud-arm64`` -> arm64)."""
    return Arch(flavour.rsplit("-", 1)[-1])
