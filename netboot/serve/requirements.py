"""What a boot server needs installed to serve with its config: each tool or module netboot
uses at run time and the Debian package that brings it (``netboot doctor``).

The boot loaders in the TFTP root are checked by :func:`netboot.boot.loaders.check`;
this is the rest. Test peers (QEMU, dnsmasq, Kea, ...) are not here: a server does
not need them (``debian-packages-test.txt`` lists those for ``make setup``).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from netboot.config import Config, StorageKind
from netboot.host.run import PACKAGES
from netboot.initramfs.build import PROGRAMS
from netboot.initramfs.sysroot import BUSYBOX

# tgt-rbd's backing store, which tgtd loads for LUNs on RBD images (`dpkg -L tgt-rbd`)
TGT_RBD_MODULE = Path("/usr/lib/tgt/backing-store/bs_rbd.so")


class Kind(StrEnum):
    PROGRAM = "program"  # on PATH
    FILE = "file"  # at its path
    MODULE = "python module"  # importable by this interpreter


@dataclass(frozen=True)
class Requirement:
    """One thing netboot uses, the package that brings it and why it is needed."""

    package: str
    kind: Kind
    name: str  # a program, a path or a module
    purpose: str


@dataclass(frozen=True)
class RequirementStatus:
    """One row of ``netboot doctor``'s package table."""

    requirement: Requirement
    found: str | None  # where it is, or None when it is missing

    @property
    def ok(self) -> bool:
        return self.found is not None

    @property
    def fix(self) -> str | None:
        return None if self.ok else f"apt-get install {self.requirement.package}"


def _program(name: str, purpose: str) -> Requirement:
    return Requirement(PACKAGES[name], Kind.PROGRAM, name, purpose)


BASE: tuple[Requirement, ...] = (
    _program("tgtd", "the iSCSI target every client's root is served by"),
    *(Requirement(p.package, Kind.FILE, str(p.path), "/init runs it (copied into the initramfs)")
      for p in PROGRAMS),
    Requirement("busybox-static", Kind.FILE, str(BUSYBOX), "the initramfs's shell and tools"),
    _program("depmod", "the initramfs's module index"),
    _program("zstd", "compresses the initramfs"),
    _program("mke2fs", "golden images and client roots (ext4)"),
    _program("ip", "checks the boot interface; the floating portal's address"),
    _program("ss", "resets a vanished initiator's connections"),
    _program("nsenter", "runs ss in tgtd's network namespace"),
    Requirement("util-linux", Kind.PROGRAM, "setpriv", "starts serve's network part "
                "as server.user with three capabilities"),
    _program("ipmitool", "client power: clients' BMCs over IPMI (lanplus)"),
)
RBD: tuple[Requirement, ...] = (
    Requirement("tgt-rbd", Kind.FILE, str(TGT_RBD_MODULE), "tgtd's LUNs on RBD images"),
    Requirement("python3-rbd", Kind.MODULE, "rbd", "clones and removes RBD images"),
    Requirement("python3-rados", Kind.MODULE, "rados", "talks to the Ceph cluster"),
)
FAILOVER: tuple[Requirement, ...] = (
    Requirement("keepalived", Kind.PROGRAM, "keepalived", "elects the floating portal's holder"),
)
EVERY = (*BASE, *RBD, *FAILOVER)


def requirements(config: Config) -> tuple[Requirement, ...]:
    """What serving with ``config`` needs: the base, and RBD's and failover's when used."""
    needed = BASE
    if config.storage.backend is StorageKind.RBD:
        needed += RBD
    if config.target.failover.enabled:
        needed += FAILOVER
    return needed


def locate(requirement: Requirement) -> str | None:
    """Where ``requirement`` is on this machine, or None."""
    match requirement.kind:
        case Kind.PROGRAM:
            return shutil.which(requirement.name)
        case Kind.FILE:
            return requirement.name if Path(requirement.name).exists() else None
        case Kind.MODULE:
            spec = importlib.util.find_spec(requirement.name)
            return spec.origin if spec is not None else None


def check(needed: tuple[Requirement, ...]) -> list[RequirementStatus]:
    """Each of ``needed``, found or not."""
    return [RequirementStatus(r, locate(r)) for r in needed]
