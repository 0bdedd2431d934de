"""The boot loaders in the TFTP root: which Debian package each comes from, copied and checked.

netboot does not build boot loaders; it serves Debian's. :func:`populate`
(``python -m netboot.boot.loaders DIR``; ``make setup`` and ``netboot lab up``)
copies them into a TFTP root and writes ``MANIFEST.json`` (package, version,
sha256 of each), so ``netboot doctor`` can tell a missing file from one that
no longer matches what was installed, and say which package to install.

A loader for another architecture than this machine's (ARM64's GRUB on an x86-64
server) comes from that architecture's package, fetched with ``apt-get download
PKG:arm64`` (``dpkg --add-architecture arm64`` and ``apt-get update`` first; ``make
setup`` does both) and unpacked, not installed. On a server whose apt does not know
that architecture it is left out (ARM64 clients are not set up there), and ``netboot
doctor`` says how to set them up without counting it as a fault. Each architecture's
loaders live in a directory of their own (``secureboot/x64/``, ``arm64/``), so none
overwrites another's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from netboot.arch import Arch, host_arch
from netboot.errors import NetbootError
from netboot.host.files import atomic_write, sha256_file
from netboot.host.run import run
from netboot.initramfs.kernel import KernelError, download_package, package_info

MANIFEST = "MANIFEST.json"
# The boot programs a PXE ROM or UEFI firmware is told to fetch (DHCP option 67).
UNDIONLY = "undionly.kpxe"
IPXE_EFI = "ipxe.efi"
SNPONLY_EFI = "snponly.efi"
PXELINUX = "pxelinux.0"
# boot.loader grub-secureboot: Debian's signed chain for UEFI x86-64, in a directory of its own
# (shim fetches grubx64.efi from the directory it was loaded from; another architecture's
# chain gets another directory, so no two ever share a name).
SECUREBOOT_X64 = "secureboot/x64"
SHIM_X64 = f"{SECUREBOOT_X64}/shimx64.efi"
GRUB_X64 = f"{SECUREBOOT_X64}/grubx64.efi"  # the name shim asks for (its DEFAULT_LOADER)
# ARM64 UEFI: Debian's signed network GRUB (arm64 has no iPXE in Debian); without Secure
# Boot the firmware runs it directly. It reads grub/grub.cfg like the x86-64 one.
GRUB_ARM64 = "arm64/grubnetaa64.efi"
FIRST_STAGE = frozenset({UNDIONLY, IPXE_EFI, SNPONLY_EFI, PXELINUX, SHIM_X64,
                         GRUB_ARM64})  # fetching one: ``loader``
_SYSLINUX_BIOS = Path("/usr/lib/syslinux/modules/bios")


@dataclass(frozen=True)
class BootFile:
    """One file the TFTP root must hold, and where Debian ships it."""

    name: str
    package: str
    source: Path  # where the package puts it
    purpose: str
    arch: Arch = Arch.AMD64  # the package's architecture

    @property
    def foreign(self) -> bool:
        """From a package of another architecture than this machine's: fetched, not
        installed (``apt-get download``)."""
        return self.arch is not host_arch()

    @property
    def apt_name(self) -> str:
        """The package as apt names it: ``grub-efi-arm64-signed:arm64`` if foreign."""
        return f"{self.package}:{self.arch}" if self.foreign else self.package


BOOT_FILES: tuple[BootFile, ...] = (
    BootFile(UNDIONLY, "ipxe", Path("/usr/lib/ipxe/undionly.kpxe"),
             "iPXE for BIOS PXE ROMs (uses the ROM's UNDI driver)"),
    BootFile(IPXE_EFI, "ipxe", Path("/usr/lib/ipxe/ipxe.efi"),
             "iPXE for UEFI x86-64 with its own NIC drivers"),
    BootFile(SNPONLY_EFI, "ipxe", Path("/usr/lib/ipxe/snponly.efi"),
             "iPXE for UEFI x86-64 using the firmware's SNP driver"),
    BootFile(PXELINUX, "pxelinux", Path("/usr/lib/PXELINUX/pxelinux.0"),
             "PXELINUX for BIOS PXE ROMs (boot.loader: pxelinux)"),
    BootFile("ldlinux.c32", "syslinux-common", _SYSLINUX_BIOS / "ldlinux.c32",
             "PXELINUX's core module, loaded right after pxelinux.0"),
    # The "not registered" PXELINUX config offers reboot (retry) and power off:
    BootFile("reboot.c32", "syslinux-common", _SYSLINUX_BIOS / "reboot.c32",
             "PXELINUX module: reboot (retry) for unregistered machines"),
    BootFile("poweroff.c32", "syslinux-common", _SYSLINUX_BIOS / "poweroff.c32",
             "PXELINUX module: power off for unregistered machines"),
    BootFile("libcom32.c32", "syslinux-common", _SYSLINUX_BIOS / "libcom32.c32",
             "library reboot.c32 needs"),
    BootFile(SHIM_X64, "shim-signed", Path("/usr/lib/shim/shimx64.efi.signed"),
             "shim signed by Microsoft's UEFI CA: UEFI x86-64 firmware with Secure Boot "
             "(boot.loader: grub-secureboot) runs it, and it checks GRUB and the kernel "
             "against Debian's key"),
    BootFile(GRUB_X64, "grub-efi-amd64-signed",
             Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
             "Debian's signed network GRUB, loaded by shim; reads /grub/grub.cfg over TFTP"),
    BootFile(GRUB_ARM64, "grub-efi-arm64-signed",
             Path("/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed"),
             "Debian's signed network GRUB for ARM64 UEFI; reads /grub/grub.cfg over TFTP",
             Arch.ARM64),
)


class FileState(StrEnum):
    OK = "ok"
    MISSING = "missing"  # not in the TFTP root
    CHANGED = "changed"  # in the root, but not the bytes the manifest recorded
    UNRECORDED = "unrecorded"  # in the root, but not in the manifest
    OUTDATED = "outdated"  # matches the manifest, but the package has moved on since
    NOT_SET_UP = "not set up"  # another architecture's, which apt does not know here: optional


@dataclass(frozen=True)
class ManifestEntry:
    """What the set-up copied: enough to check the file and to say where it came from."""

    name: str
    package: str
    version: str
    sha256: str
    size: int
    source: str


@dataclass(frozen=True)
class FileStatus:
    """One row of ``netboot doctor``."""

    name: str
    package: str
    version: str | None
    state: FileState
    fix: str | None

    @property
    def ok(self) -> bool:
        return self.state in (FileState.OK, FileState.NOT_SET_UP)


def apt_architectures() -> frozenset[Arch]:
    """The architectures apt fetches packages of here: this machine's and the foreign ones
    dpkg was told of (``dpkg --add-architecture``)."""
    try:
        out = run(["dpkg", "--print-foreign-architectures"], what="asking dpkg",
                  error=NetbootError)
    except NetbootError:
        out = ""
    return frozenset({host_arch()} | {Arch(a) for a in out.split() if a in Arch._value2member_map_})


def package_version(package: str) -> str | None:
    """The installed version of a Debian package, or None if it is not installed (or
    this is not a Debian system: no dpkg-query)."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        return None
    status, _, version = proc.stdout.partition(" ")
    return version if proc.returncode == 0 and status == "installed" else None


def read_manifest(root: Path) -> dict[str, ManifestEntry]:
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text())
        return {e["name"]: ManifestEntry(**e) for e in data["files"]}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError) as err:
        raise NetbootError(f"{path} is not a netboot manifest ({err}); "
                           f"rewrite it with '{_copy(root)}'") from None


def _fetch(f: BootFile, cache: Path | None, into: Path) -> tuple[Path, str]:
    """``f`` out of its package of another architecture, downloaded into ``cache`` (a
    temporary directory if None) and unpacked under ``into``; the file and the version."""
    try:
        info = package_info(f.package, f.arch)
        deb = download_package(info, f.arch, cache or into, progress=lambda _: None)
    except KernelError as err:
        raise NetbootError(f"{f.name}: {err}") from None
    unpacked = into / f.arch.value
    run(["dpkg-deb", "-x", str(deb), str(unpacked)], what=f"extracting {deb}",
        error=NetbootError)
    source = unpacked / f.source.relative_to("/")
    if not source.is_file():
        raise NetbootError(f"{deb.name} holds no {f.source}")
    return source, info.version


def populate(root: Path, files: tuple[BootFile, ...] = BOOT_FILES,
             cache: Path | None = None) -> list[ManifestEntry]:
    """Copy every boot file into ``root`` and write the manifest; files already right stay.

    Idempotent: a second run changes nothing on disk (not even mtimes). A
    package that is not installed is an error naming it, since a TFTP root
    without its boot loader cannot boot anything. Another architecture's packages are
    downloaded into ``cache`` (kept there for the next run); one apt does not know is
    left out (see :func:`not_set_up`).
    """
    root.mkdir(parents=True, exist_ok=True)
    files = tuple(f for f in files if f.arch in apt_architectures())
    missing = sorted({f.package for f in files
                      if not f.foreign and package_version(f.package) is None})
    if missing:
        raise NetbootError(f"Debian packages not installed: {', '.join(missing)}; "
                           f"install them with 'apt-get install {' '.join(missing)}'")
    entries = []
    with tempfile.TemporaryDirectory(prefix="netboot-loaders-") as tmp:
        for f in files:
            entries.append(_copy_in(root, f, cache, Path(tmp)))
    text = json.dumps({"files": [asdict(e) for e in entries]}, indent=2) + "\n"
    manifest = root / MANIFEST
    if not manifest.is_file() or manifest.read_text() != text:
        atomic_write(manifest, text.encode(), 0o644)
    return entries


def _copy_in(root: Path, f: BootFile, cache: Path | None, tmp: Path) -> ManifestEntry:
    """One boot file into ``root`` (unless already there), and its manifest entry."""
    if f.foreign:
        source, version = _fetch(f, cache, tmp)
    else:
        source, version = f.source, package_version(f.package) or ""
        if not source.is_file():
            raise NetbootError(f"{f.source} is missing although {f.package} is installed; "
                               f"reinstall it with 'apt-get install --reinstall {f.package}'")
    digest = sha256_file(source)
    target = root / f.name
    for directory in reversed(target.parents):  # searchable by all, as files are readable
        if root in directory.parents and not directory.is_dir():
            directory.mkdir()
            directory.chmod(0o755)
    if not target.is_file() or sha256_file(target) != digest:
        atomic_write(target, source.read_bytes(), 0o644)
    return ManifestEntry(f.name, f.apt_name, version, digest, source.stat().st_size, str(f.source))


def not_set_up(files: tuple[BootFile, ...] = BOOT_FILES) -> list[BootFile]:
    """The boot files left out here: of an architecture apt does not know."""
    known = apt_architectures()
    return [f for f in files if f.arch not in known]


def _copy(root: Path) -> str:
    """The command that fills ``root`` with the boot files and their manifest."""
    return f"python -m netboot.boot.loaders {root}"


def check(root: Path, files: tuple[BootFile, ...] = BOOT_FILES) -> list[FileStatus]:
    """Compare the TFTP root with its manifest and with the installed packages."""
    manifest = read_manifest(root)
    left_out = not_set_up(files)
    out = []
    for f in files:
        entry = manifest.get(f.name)
        installed = None if f.foreign else package_version(f.package)
        path = root / f.name
        if f in left_out and not path.is_file():
            state = FileState.NOT_SET_UP
        elif not path.is_file():
            state = FileState.MISSING
        elif entry is None:
            state = FileState.UNRECORDED
        elif sha256_file(path) != entry.sha256:
            state = FileState.CHANGED
        elif installed is not None and installed != entry.version:
            state = FileState.OUTDATED
        else:
            state = FileState.OK
        fix = None
        if state is not FileState.OK:
            fix = _copy(root)
            if f.foreign:  # fetched, not installed: apt must know the architecture
                fix = f"dpkg --add-architecture {f.arch} && apt-get update && {fix}"
            elif installed is None:
                fix = f"apt-get install {f.package} && {fix}"
        out.append(FileStatus(f.name, f.package, entry.version if entry else installed,
                              state, fix))
    return out


def main(argv: list[str]) -> int:
    """``python -m netboot.boot.loaders ROOT``: what ``make setup`` runs, and a doctor's fix."""
    if len(argv) != 1:
        print("usage: python -m netboot.boot.loaders TFTP_ROOT", file=sys.stderr)
        return 2
    try:
        entries = populate(Path(argv[0]))
    except NetbootError as err:
        print(f"setup: {err}", file=sys.stderr)
        return 1
    print(f"setup: {len(entries)} boot files in {argv[0]} "
          f"({', '.join(sorted({f'{e.package} {e.version}' for e in entries}))})")
    for arch in sorted({f.arch for f in not_set_up()}):
        print(f"setup: no {arch} boot loaders: apt does not know {arch} packages "
              f"('dpkg --add-architecture {arch} && apt-get update', then this again)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
