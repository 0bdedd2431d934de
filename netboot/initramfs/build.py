"""Build the shared base initramfs: gather files, write a reproducible cpio, compress, cache.

Same inputs give the same bytes: the archive is :func:`netboot.initramfs.cpio.write_newc`
(sorted, root-owned, one mtime from ``SOURCE_DATE_EPOCH``), gzip runs with
mtime 0 and zstd single-threaded. The uncompressed archive's hash names the
cached result, so an unchanged build costs a hash, not a compression.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from netboot.arch import Arch
from netboot.config import Config, OnFail
from netboot.errors import NetbootError
from netboot.host.files import atomic_write
from netboot.host.run import run, run_bytes
from netboot.initramfs import DATA
from netboot.initramfs.cpio import Entry, write_newc
from netboot.initramfs.kernel import KernelRelease, current
from netboot.initramfs.modules import ModuleTree, Resolution, parse_module_list
from netboot.initramfs.sysroot import BUSYBOX, Sysroot, SysrootError, sysroot
from netboot.templates import render

Progress = Callable[[str], None]
MODULE_LIST = DATA / "modules.txt"
UDHCPC_SCRIPT = DATA / "udhcpc.script"
ZSTD_LEVEL = 19
# depmod's outputs /init, modprobe and iscsistart's libkmod read; the rest stays behind.
MODULE_INDEXES = ("modules.alias", "modules.alias.bin", "modules.builtin", "modules.builtin.bin",
                  "modules.builtin.alias.bin", "modules.dep", "modules.dep.bin",
                  "modules.devname", "modules.order", "modules.softdep", "modules.symbols",
                  "modules.symbols.bin")
# Mount points and directories /init and iscsistart expect to exist.
DIRECTORIES = ("dev", "proc", "sys", "run", "root", "tmp", "etc/iscsi", "var/lock")


class InitramfsError(NetbootError):
    """The base image cannot be built from what is installed."""


@dataclass(frozen=True)
class Program:
    """A dynamically linked program /init runs, copied in with its libraries."""

    path: Path  # in its architecture's root (:class:`Sysroot`) and in the image
    package: str  # the Debian package that installs it


# iscsistart logs in to the root's target; resize2fs grows the root's ext4 online to fill
# its LUN (a LUN grown on the server where its filesystem cannot be, such as an RBD clone).
PROGRAMS = (Program(Path("/sbin/iscsistart"), "open-iscsi"),
            Program(Path("/sbin/resize2fs"), "e2fsprogs"))


class Compression(StrEnum):
    AUTO = "auto"  # zstd if the kernel unpacks it and zstd is installed, else gzip
    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"


# The kernel option that lets it unpack an initramfs compressed each way.
_KERNEL_OPTION = {Compression.ZSTD: "CONFIG_RD_ZSTD", Compression.GZIP: "CONFIG_RD_GZIP"}


def choose_compression(requested: Compression, kernel_options: dict[str, str],
                       have_zstd: bool) -> Compression:
    """The compression to use: what was asked for, if this kernel can unpack it.

    A kernel without a config file is assumed to take gzip, which every
    distribution kernel does.
    """
    def supported(c: Compression) -> bool:
        return not kernel_options or kernel_options.get(_KERNEL_OPTION[c]) == "y"

    if requested is Compression.AUTO:
        if have_zstd and kernel_options and supported(Compression.ZSTD):
            return Compression.ZSTD
        requested = Compression.GZIP
    if requested is not Compression.NONE and not supported(requested):
        raise InitramfsError(f"the kernel cannot unpack a {requested} initramfs "
                             f"({_KERNEL_OPTION[requested]} is not set)")
    return requested


def compress(data: bytes, compression: Compression) -> bytes:
    """``data`` compressed reproducibly (gzip without a time stamp, zstd single-threaded)."""
    if compression is Compression.GZIP:
        out = gzip.compress(data, compresslevel=9, mtime=0)
    elif compression is Compression.ZSTD:
        out = run_bytes(["zstd", f"-{ZSTD_LEVEL}", "-T1", "-q", "-c"], what="zstd failed",
                        error=InitramfsError, input=data)
    else:
        out = data
    return out


def pad4(image: bytes) -> bytes:
    """``image`` with zeros up to a multiple of 4 bytes.

    The EFI stub joins initrds without padding, and the kernel finds the next
    archive only on a 4-byte boundary (it skips zeros between archives), so an
    unpadded base image loses the per-client part that follows it.
    """
    return image + b"\0" * (-len(image) % 4)


@dataclass(frozen=True)
class InitSettings:
    """The timeouts and retries /init is rendered with (seconds unless named otherwise)."""

    onfail: OnFail = OnFail.REBOOT
    onfail_delay: int = 30
    link_timeout: int = 10
    dhcp_tries: int = 4
    dhcp_timeout: int = 3
    login_attempts: int = 3  # whole iscsistart runs, with back-off 1, 2, 4... s between
    login_timeout: int = 10  # node.conn[0].timeo.login_timeout
    login_retry_max: int = 1  # node.session.initial_login_retry_max, per iscsistart run
    lun_timeout: int = 20


def render_init(kernel_version: str, settings: InitSettings) -> str:
    values = asdict(settings) | {"onfail": settings.onfail.value}
    return render("init.j2", DATA, kernel_version=kernel_version, **values)


@dataclass
class Component:
    """One group of files in the image, for the summary the build prints."""

    name: str
    entries: list[Entry]
    detail: str = ""

    @property
    def size(self) -> int:
        return sum(len(e.data) for e in self.entries)


@dataclass(frozen=True)
class Manifest:
    """What a build produced and from what; written beside the image as JSON."""

    digest: str
    path: str
    kernel_version: str
    kernel_package: str
    compression: str
    epoch: int
    size: int
    uncompressed_size: int
    padding: int  # zero bytes after the compressed stream (see pad4)
    components: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    arch: str = Arch.AMD64.value
    packages: list[str] = field(default_factory=list)  # another arch's, "package version"


def _file(path: Path, name: str) -> Entry:
    """``path``'s content (symlinks followed) as archive member ``name``, mode kept."""
    try:
        st = path.stat()
        return Entry.file(name, path.read_bytes(), stat.S_IMODE(st.st_mode))
    except OSError as err:
        raise InitramfsError(f"{path}: {err.strerror}") from None


def busybox_component(root: Sysroot) -> Component:
    """busybox as /bin/busybox and a symlink to it for each applet it has."""
    try:
        busybox = root.path(BUSYBOX)
        applets = root.applets()
    except SysrootError as err:
        raise InitramfsError(f"{err}: install busybox-static") from None
    entries = [_file(busybox, "bin/busybox")]
    entries += [Entry.symlink(a, "/bin/busybox") for a in applets if a != "bin/busybox"]
    return Component("busybox", entries, f"{len(applets)} applets")


def program_component(program: Program, root: Sysroot,
                      present: Collection[str] = ()) -> Component:
    """``program`` with its dynamic loader and the libraries it loads, but for those already
    ``present`` (archive names an earlier component holds: libc is everyone's)."""
    try:
        path = root.path(str(program.path))
    except SysrootError:
        raise InitramfsError(f"{program.path} not found: install {program.package}") from None
    loader, libraries = root.libraries(str(program.path))
    files = ({loader: root.path(loader)} if loader else {}) | libraries
    entries = [_file(path, str(program.path).lstrip("/"))]
    entries += [_file(source, name.lstrip("/")) for name, source in files.items()
                if name.lstrip("/") not in present]
    return Component(program.path.name, entries,
                     ", ".join(Path(e.name).name for e in entries[1:]))


def requested_modules(config: Config) -> list[str]:
    return parse_module_list(MODULE_LIST.read_text()) + list(config.boot.extra_modules)


def module_component(release: KernelRelease, requested: list[str]) -> tuple[Component,
                                                                              Resolution]:
    """The module files ``requested`` needs, with indexes depmod builds for just those."""
    resolution = ModuleTree.read(release.modules).resolve(requested)
    prefix = f"lib/modules/{release.version}"
    with tempfile.TemporaryDirectory(prefix="netboot-modules-") as tmp:
        root = Path(tmp) / prefix
        for rel in resolution.files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(release.modules / rel, root / rel)
        for index in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            if (release.modules / index).exists():
                shutil.copyfile(release.modules / index, root / index)
        run(["depmod", "-b", tmp, release.version],
            what="depmod for the image's modules failed", error=InitramfsError)
        entries = [Entry.file(f"{prefix}/{rel}", (root / rel).read_bytes())
                   for rel in resolution.files]
        entries += [Entry.file(f"{prefix}/{index}", (root / index).read_bytes())
                    for index in MODULE_INDEXES if (root / index).exists()]
    for kind, names in load_lists(resolution).items():
        entries.append(Entry.file(f"etc/netboot/modules.{kind}",
                                  "".join(f"{m}\n" for m in names).encode()))
    detail = f"{len(resolution.files)} files for {len(resolution.load)} requested"
    return Component("modules", entries, detail), resolution


def load_lists(resolution: Resolution) -> dict[str, list[str]]:
    """How /init loads each requested module, by where it lives in the kernel tree.

    ``load``: at once (iSCSI, disks, buses). ``nic`` (``kernel/drivers/net/``):
    only for hardware that is there, matched by modalias, the whole list being
    the fallback when no NIC with the boot MAC shows up. Filesystems
    (``kernel/fs/``) are in neither: /init loads the root's own type before
    mounting it. Loading every NIC driver and xfs costs seconds under emulation.
    """
    lists: dict[str, list[str]] = {"load": [], "nic": []}
    for name, path in zip(resolution.load, resolution.paths, strict=True):
        if path.startswith("kernel/drivers/net/"):
            lists["nic"].append(name)
        elif not path.startswith("kernel/fs/"):
            lists["load"].append(name)
    return lists


def init_component(release: KernelRelease, settings: InitSettings) -> Component:
    """/init, the udhcpc hook, /dev/console and the empty directories."""
    entries = [
        Entry.file("init", render_init(release.version, settings).encode(), 0o755),
        Entry.file("etc/netboot/udhcpc.script", UDHCPC_SCRIPT.read_bytes(), 0o755),
        # The kernel opens /dev/console for /init before anything is mounted.
        Entry.chardev("dev/console", 5, 1, 0o600),
        *(Entry.directory(d) for d in DIRECTORIES),
    ]
    return Component("init", entries,
                     f"/init for {release.version}, onfail={settings.onfail.value}")


def module_notes(resolution: Resolution, package: str) -> list[str]:
    notes = []
    if resolution.builtin:
        notes.append(f"built into the kernel: {', '.join(resolution.builtin)}")
    for name, targets in resolution.aliases.items():
        notes.append(f"{name} is an alias of {', '.join(targets) or 'nothing in this kernel'}")
    if resolution.missing:
        notes.append(f"not in {package}, skipped: {', '.join(resolution.missing)}")
    return notes


def source_date_epoch() -> int:
    """``$SOURCE_DATE_EPOCH`` (reproducible-builds.org), else 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        return int(value)
    except ValueError:
        raise InitramfsError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from None


def manifest_path(image: Path) -> Path:
    return image.with_name(image.name + ".json")


def build(config: Config, progress: Progress,
          compression: Compression = Compression.AUTO, arch: Arch = Arch.AMD64) -> Manifest:
    """Build (or take from the cache) ``arch``'s base image at config.initramfs_file(arch),
    from that architecture's kernel and programs (:mod:`netboot.initramfs.sysroot`)."""
    settings = InitSettings(onfail=config.boot.onfail)
    release = current(config, arch)
    epoch = source_date_epoch()
    progress(f"kernel {release.version} ({release.package} {release.package_version})")
    chosen = choose_compression(compression, release.kernel_config(),
                                shutil.which("zstd") is not None)
    root = sysroot(config, arch, progress)
    progress(f"busybox ({arch}, from {root.root})")
    components = [busybox_component(root)]
    for program in PROGRAMS:
        progress(f"{program.path.name} and its libraries")
        present = {e.name for c in components for e in c.entries}
        components.append(program_component(program, root, present))
    progress(f"modules from {release.modules}")
    modules, resolution = module_component(release, requested_modules(config))
    components.append(modules)
    components.append(init_component(release, settings))
    archive = write_newc([e for c in components for e in c.entries], mtime=epoch)
    digest = hashlib.sha256(archive + f"\0{chosen}:{ZSTD_LEVEL}".encode()).hexdigest()
    cached_image = config.storage.cache / "initramfs" / f"{digest}.img"
    cached = cached_image.exists()
    if cached:
        progress(f"cached {cached_image.name[:16]}...")
        compressed = cached_image.read_bytes()
    else:
        progress(f"compressing {len(archive) / 1e6:.1f} MB with {chosen}")
        compressed = compress(archive, chosen)
        cached_image.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cached_image, compressed, 0o644)
    image = pad4(compressed)
    target = config.initramfs_file(arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, image, 0o644)
    manifest = Manifest(
        digest=digest, path=str(target), kernel_version=release.version,
        kernel_package=f"{release.package} {release.package_version}",
        compression=str(chosen), epoch=epoch, size=len(image), uncompressed_size=len(archive),
        padding=len(image) - len(compressed),
        components=[{"name": c.name, "files": len(c.entries), "bytes": c.size,
                     "detail": c.detail} for c in components],
        notes=module_notes(resolution, release.package), cached=cached, arch=arch.value,
        packages=list(root.packages))
    atomic_write(manifest_path(target),
                 (json.dumps(asdict(manifest), indent=2) + "\n").encode(), 0o644)
    return manifest
