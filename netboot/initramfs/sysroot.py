"""Where the programs of an architecture come from: this machine's own, or Debian's packages
of another architecture unpacked into the cache, never the two mixed.

The base initramfs and the built-in image hold busybox, iscsistart and resize2fs with
their libraries. For this machine's architecture they are the installed ones
(``debian-packages.txt``). For another (``arm64`` on an x86-64 server) :data:`PACKAGES`
are fetched as ``PKG:arm64`` with ``apt-get download`` (``dpkg --add-architecture arm64``
and ``apt-get update`` first: ``make setup`` does it) and unpacked with ``dpkg-deb -x``
into ``<cache>/sysroots/<arch>-<hash of the .debs>``, which nothing installs or runs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netboot.arch import FACTS, Arch, host_arch
from netboot.config import Config
from netboot.errors import NetbootError
from netboot.host.run import run
from netboot.initramfs.elf import beneath, interpreter, libraries_beneath, shared_libraries
from netboot.initramfs.kernel import download_packages, package_infos

Progress = Callable[[str], None]
BUSYBOX = "/bin/busybox"  # Debian's busybox-static
# The packages of another architecture the programs and their libraries come from
# (:func:`libraries_beneath` names a library missing from them).
PACKAGES = ("busybox-static", "open-iscsi", "libopeniscsiusr", "libssl3", "libkmod2", "libzstd1",
            "liblzma5", "libc6", "e2fsprogs", "libext2fs2", "libcom-err2")
# busybox's applet names, sorted and NUL-separated in its binary, start with these
_APPLET_NAMES_START = b"\0[\0[[\0"


class SysrootError(NetbootError):
    """The programs of an architecture cannot be had."""


@dataclass(frozen=True)
class Sysroot:
    """The root of one architecture's programs: ``/`` for this machine's."""

    arch: Arch
    root: Path
    packages: tuple[str, ...] = ()  # "package version" of each unpacked one (another arch)

    @property
    def native(self) -> bool:
        return self.root == Path("/")

    def path(self, name: str) -> Path:
        """The file the system at this root calls ``name`` (``/sbin/iscsistart``)."""
        found = beneath(self.root, name)
        if found is None:
            raise SysrootError(f"{name} not found in {self.root}")
        return found

    def libraries(self, program: str) -> tuple[str, dict[str, Path]]:
        """``program``'s loader and its libraries: {name in the image: file with its bytes}."""
        if self.native:
            loader, paths = shared_libraries(Path(program))
            return loader, {str(p): p for p in paths}
        return libraries_beneath(self.root, program, FACTS[self.arch].triplet)

    def applets(self) -> list[str]:
        """busybox's applets by their full path (``bin/sh``, ``sbin/ifconfig``). Another
        architecture's busybox cannot run here to say (``--list-full``): its applet names
        are read from its binary, each in ``bin/`` (on /init's PATH)."""
        busybox = self.path(BUSYBOX)
        if interpreter(busybox.read_bytes()) is not None:
            raise SysrootError(f"{busybox} is dynamically linked: install busybox-static")
        if self.native:
            return run([str(busybox), "--list-full"], what=f"listing {busybox}'s applets",
                       error=SysrootError).split()
        return [f"bin/{name}" for name in applet_names(busybox.read_bytes())]


def applet_names(data: bytes) -> list[str]:
    """The applet names in a busybox binary (its ``applet_names`` table)."""
    start = data.find(_APPLET_NAMES_START)
    if start < 0:
        raise SysrootError("no applet table in this busybox")
    names = []
    at = start + 1
    while (end := data.index(b"\0", at)) > at:
        names.append(data[at:end].decode())
        at = end + 1
    return names


def sysroot(config: Config, arch: Arch, progress: Progress) -> Sysroot:
    """The root of ``arch``'s programs; for another architecture than this machine's its
    packages fetched and unpacked into the cache (once per set of package versions)."""
    if arch is host_arch():
        return Sysroot(arch, Path("/"))
    infos = package_infos(PACKAGES, arch)
    debs = download_packages(infos, arch, config.storage.cache / "debs" / arch.value, progress)
    key = hashlib.sha256("".join(i.sha256 for i in infos).encode()).hexdigest()[:16]
    root = config.storage.cache / "sysroots" / f"{arch}-{key}"
    if not root.is_dir():
        progress(f"unpacking {len(debs)} {arch} packages into {root}")
        root.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root.parent, prefix=".unpack-") as tmp:
            staging = Path(tmp) / "root"
            for deb in debs:
                run(["dpkg-deb", "-x", str(deb), str(staging)], what=f"extracting {deb}",
                    error=SysrootError)
            os.replace(staging, root)
    return Sysroot(arch, root, tuple(f"{i.package} {i.version}" for i in infos))
