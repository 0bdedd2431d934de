"""Golden images of a real distribution: Debian built by mmdebstrap, made netboot-ready.

``netboot image build NAME --debootstrap SUITE`` comes here. Why mmdebstrap
rather than debootstrap: it resolves the whole package set with apt in one
go, writes a tarball directly (which is the cache) and reports its phases.
The tarball holds only what mmdebstrap installed, keyed by every input that
changes it (suite, package list, mmdebstrap version, mirror), so a second
build with the same inputs skips the download and install. netboot's own
files, the kernel modules and the ext4 image are made fresh from it each time
(seconds), so changing them never needs a cold build; so are the files a build adds
(``--files DIR``), which is how a new version differs by a few files only.

The ext4 image is made with ``mke2fs -d`` from the tree: no loop mounts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netboot.host.files import atomic_path, remove_stale_temps, temp_path
from netboot.host.run import run, run_bytes
from netboot.names import validate_image_name
from netboot.size import format_size
from netboot.storage.bootdisk import make_boot_disk
from netboot.storage.osfiles import (
    DEFAULT_OPTIONS,
    OsImageError,
    OsOptions,
    grub_config,
    make_netboot_ready,
    run_in_root,
)

Progress = Callable[[str], None]

SOURCES_FILE = Path("/etc/apt/sources.list.d/debian.sources")
VARIANT = "minbase"
# What a diskless Debian needs to boot from its LUN, be reached, and shut down when asked:
# acpid runs netboot's power-button event (a BMC's soft power-off is an ACPI press); the
# image has no D-Bus daemon, so systemd-logind, which would act on it too, does not run.
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "udev", "kmod", "iproute2", "open-iscsi", "openssh-server",
    "acpid",
)
# Method sanboot boots the image's own kernel, whose initramfs logs in from the iBFT.
SANBOOT_PACKAGES = ("linux-image-amd64", "initramfs-tools")
DEFAULT_SIZE = 2 << 30
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_SUITE = re.compile(r"^[a-z][a-z0-9-]*$")
# Room mke2fs needs beyond the files: metadata, journal, reserved blocks.
_SLACK_FACTOR = 1.25
_SLACK_BYTES = 64 << 20


@dataclass(frozen=True)
class Mirror:
    """Where Debian's packages come from, as this machine's apt is configured."""

    archive: str
    security: str | None = None
    components: tuple[str, ...] = ("main",)
    updates: bool = False

    def sources(self, suite: str) -> tuple[str, ...]:
        """The sources.list lines for ``suite``, as the image will keep them."""
        components = " ".join(self.components)
        lines = [f"deb {self.archive} {suite} {components}"]
        if self.updates:
            lines.append(f"deb {self.archive} {suite}-updates {components}")
        if self.security:
            lines.append(f"deb {self.security} {suite}-security {components}")
        return tuple(lines)


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key is not None:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_mirror(text: str, where: str) -> Mirror:
    """The Debian archive and security mirrors named in a deb822 ``.sources`` file."""
    archive = security = None
    components: tuple[str, ...] = ("main",)
    updates = False
    for stanza in _deb822_stanzas(text):
        if "deb" not in stanza.get("types", "").split() or stanza.get("enabled") == "no":
            continue
        uris = stanza.get("uris", "").split()
        suites = stanza.get("suites", "").split()
        if not uris or not suites:
            continue
        if all(s.endswith("-security") for s in suites):
            security = security or uris[0]
        elif archive is None:
            archive = uris[0]
            components = tuple(stanza.get("components", "main").split()) or ("main",)
            updates = any(s.endswith("-updates") for s in suites)
    if archive is None:
        raise OsImageError(f"{where}: no enabled 'Types: deb' entry with URIs and Suites")
    return Mirror(archive, security, components, updates)


def read_mirror(path: Path = SOURCES_FILE) -> Mirror:
    """This machine's Debian mirror, read at run time (never a hard-coded host)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise OsImageError(f"{path}: cannot read the Debian mirror to build from: "
                           f"{err.strerror}") from None
    return parse_mirror(text, str(path))


def check_packages(packages: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The package names, validated (one clear error for the first bad one)."""
    for name in packages:
        if not _PACKAGE.match(name):
            raise OsImageError(f"{name!r} is not a Debian package name")
    return tuple(packages)


def package_set(extra: tuple[str, ...], sanboot: bool) -> tuple[str, ...]:
    """Base packages, the sanboot kernel if asked, and the extras: sorted, no repeats."""
    wanted = {*BASE_PACKAGES, *check_packages(extra)}
    if sanboot:
        wanted.update(SANBOOT_PACKAGES)
    return tuple(sorted(wanted))


def cache_key(suite: str, packages: tuple[str, ...], tool_version: str,
              sources: tuple[str, ...]) -> str:
    """A name for the tarball that changes whenever anything that shapes it does."""
    inputs = {"suite": suite, "variant": VARIANT, "packages": sorted(set(packages)),
              "mmdebstrap": tool_version, "sources": list(sources)}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def mmdebstrap_version() -> str:
    return run(["mmdebstrap", "--version"], what="mmdebstrap --version",
               error=OsImageError).strip()


def _run_streamed(argv: list[str], progress: Progress, prefix: str,
                  env: dict[str, str] | None = None) -> None:
    """Run ``argv``, passing each output line to ``progress``; on failure, the last lines."""
    tail: deque[str] = deque(maxlen=20)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            progress(f"{prefix}: {line}")
    if proc.returncode != 0:
        raise OsImageError(f"{argv[0]} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def base_tarball(suite: str, packages: tuple[str, ...], mirror: Mirror, cache_dir: Path,
                 progress: Progress) -> Path:
    """mmdebstrap's root for ``suite`` with ``packages``, from the cache or built now."""
    if not _SUITE.match(suite):
        raise OsImageError(f"{suite!r} is not a Debian suite name (e.g. bookworm)")
    sources = mirror.sources(suite)
    key = cache_key(suite, packages, mmdebstrap_version(), sources)
    directory = cache_dir / "debian"
    path = directory / f"{suite}-{key}.tar.zst"
    if path.exists():
        progress(f"cache: reusing {path.name} ({format_size(path.stat().st_size)})")
        return path
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(directory)
    scratch = temp_path(directory / "scratch")
    scratch.mkdir(exist_ok=True)
    progress(f"mmdebstrap: building {suite} ({VARIANT} + {len(packages)} packages) from "
             f"{mirror.archive}")
    try:
        # mmdebstrap compresses by the name's suffix
        with atomic_path(path, suffix=".tar.zst") as partial:
            argv = ["mmdebstrap", "--mode=root", f"--variant={VARIANT}", "--format=tar",
                    f"--include={','.join(packages)}", suite, str(partial), *sources]
            _run_streamed(argv, progress, "mmdebstrap",
                          env={**os.environ, "TMPDIR": str(scratch)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    progress(f"cache: stored {path.name} ({format_size(path.stat().st_size)})")
    return path


def extract(tarball: Path, tree: Path) -> None:
    """Unpack a root tarball with owners, modes, device nodes and capabilities intact."""
    tree.mkdir(parents=True, exist_ok=True)
    run(["tar", "--zstd", "-xpf", str(tarball), "--numeric-owner", "--xattrs",
         "--xattrs-include=*", "-C", str(tree)], what=f"unpacking {tarball} failed",
        error=OsImageError)


def modules_version(modules_dir: Path) -> tuple[str, Path]:
    """(version, tree) of a kernel's modules: ``modules_dir`` is ``.../<version>``
    (holding ``kernel/``) or a directory holding exactly one ``<version>/``."""
    if (modules_dir / "kernel").is_dir():
        return modules_dir.name, modules_dir
    versions = [d for d in modules_dir.iterdir() if (d / "kernel").is_dir()] \
        if modules_dir.is_dir() else []
    if len(versions) != 1:
        raise OsImageError(f"{modules_dir}: expected one kernel's modules (<version>/kernel/...), "
                           f"found {len(versions)}")
    return versions[0].name, versions[0]


def install_modules(tree: Path, modules_dir: Path) -> str:
    """Copy the served kernel's modules to /lib/modules/<version> and index them."""
    version, source = modules_version(modules_dir)
    target = tree / "usr/lib/modules" / version
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    run_in_root(tree, ["depmod", "-a", version])
    return version


def tree_bytes(tree: Path) -> int:
    """Bytes the tree's files take on disk (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _dirs, files in os.walk(tree):
        for name in [*files, "."]:
            st = os.lstat(os.path.join(directory, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def check_fits(tree: Path, size: int) -> None:
    """A clear error, before mke2fs runs out of blocks, when ``tree`` needs more than ``size``."""
    needed = int(tree_bytes(tree) * _SLACK_FACTOR) + _SLACK_BYTES
    if size < needed:
        raise OsImageError(f"image size {format_size(size)} is too small for {tree} "
                           f"(needs at least {format_size(needed)}); pass a larger --size")


def make_ext4(tree: Path, image: Path, size: int, label: str) -> None:
    """An ext4 filesystem of ``size`` bytes holding ``tree`` (mke2fs -d, no mounts)."""
    check_fits(tree, size)
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", label[:16], "-d", str(tree), str(image),
         f"{size // 1024}k"], what=f"mke2fs -d {tree} {image} failed", error=OsImageError)


def add_files(tree: Path, files: Path) -> None:
    """Copy the tree ``files`` into the root ``tree`` (``files/etc/x`` becomes ``/etc/x``),
    owned by root. The root's own tar unpacks them inside it (chroot), so its paths resolve
    as the running system's will: its directory links (``/lib`` -> ``usr/lib``) stay links,
    an absolute link never leads out of it, and directories it has keep their modes."""
    if not files.is_dir():
        raise OsImageError(f"{files} is not a directory (--files takes a tree of files)")
    archive = run_bytes(["tar", "-C", str(files), "--owner=0", "--group=0", "--numeric-owner",
                         "-cf", "-", "."], what=f"packing {files} failed", error=OsImageError)
    run_bytes(["chroot", str(tree), "tar", "-xf", "-", "-C", "/", "--keep-directory-symlink",
               "--no-overwrite-dir"], what=f"unpacking {files} into the root failed",
              error=OsImageError, input=archive)


def prepare_debian_tree(tree: Path, suite: str, packages: tuple[str, ...],
                        modules_dir: Path | None, cache_dir: Path, progress: Progress,
                        options: OsOptions = DEFAULT_OPTIONS, mirror: Mirror | None = None,
                        files: Path | None = None) -> None:
    """A netboot-ready Debian root in ``tree`` (which must not exist yet), with the tree
    ``files`` copied in (before netboot's own files, and without any identity, like the
    rest: a golden image is every client's)."""
    if os.geteuid() != 0:
        raise OsImageError("building a Debian image needs root (mmdebstrap --mode=root, and "
                           "unpacking a root tree with its owners)")
    wanted = package_set(packages, options.sanboot)
    tarball = base_tarball(suite, wanted, mirror or read_mirror(), cache_dir, progress)
    progress(f"tree: unpacking into {tree}")
    extract(tarball, tree)
    if modules_dir is not None:
        progress(f"tree: kernel modules {install_modules(tree, modules_dir)}")
    else:
        progress("tree: no kernel modules given; the image gets none")
    if files is not None:
        progress(f"tree: adding the files of {files}")
        add_files(tree, files)
    progress("tree: netboot units, no machine-id, no SSH host keys, no initiator name")
    make_netboot_ready(tree, options)
    if options.sanboot:
        progress("tree: update-initramfs (iBFT login for sanboot)")
        run_in_root(tree, ["update-initramfs", "-u", "-k", "all"])


def build_debian_image(name: str, suite: str, packages: tuple[str, ...], size: int | None,
                       modules_dir: Path | None, cache_dir: Path, final: Path,
                       progress: Progress, options: OsOptions = DEFAULT_OPTIONS,
                       mirror: Mirror | None = None, files: Path | None = None) -> Path:
    """``final``: golden image NAME of Debian ``suite`` (ext4, or a bootable disk with
    ``options.sanboot``), written atomically.

    A failure (or a kill) leaves no image and no half-written file under its name;
    leftovers of a killed build are removed by the next one.
    """
    validate_image_name(name)
    started = time.monotonic()
    images_dir = final.parent
    images_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(images_dir)
    work = temp_path(images_dir / name)
    try:
        tree = work / "tree"
        work.mkdir()
        prepare_debian_tree(tree, suite, packages, modules_dir, cache_dir, progress, options,
                            mirror, files)
        size = size or DEFAULT_SIZE
        with atomic_path(final) as image:
            if options.sanboot:
                check_fits(tree, size)
                progress(f"image: bootable disk, MBR + GRUB + ext4 partition "
                         f"({format_size(size)})")
                make_boot_disk(tree, image, size, name, grub_config(name, options))
            else:
                progress(f"image: mke2fs -t ext4 -d ({format_size(size)})")
                make_ext4(tree, image, size, name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(f"image: {final} in {time.monotonic() - started:.1f}s")
    return final
