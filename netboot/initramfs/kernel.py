"""The boot kernel: one Debian kernel package gives both the served vmlinuz and the
initramfs's modules, so they can never come from different builds.

``fetch`` resolves the flavour's metapackage (``linux-image-cloud-amd64``) to the
versioned package it depends on, downloads that with ``apt-get download`` into
the cache, unpacks it with ``dpkg-deb`` and runs ``depmod`` (Debian's .deb ships
no ``modules.dep``). A release lives under ``<state_dir>/kernel/releases/<version>``
in the package's own layout (``boot/``, ``lib/modules/<version>``); ``current``
points at the one in use and ``config.kernel_path`` holds a copy of its vmlinuz.

Each architecture has its own: a flavour names it (``cloud-arm64``), its package is
fetched as ``PKG:arm64`` (``dpkg --add-architecture arm64`` first), and another
architecture than amd64 keeps its releases and ``current`` under ``kernel/<arch>/``
(``config.kernel_file(arch)``), so two never replace each other.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from netboot.arch import Arch, by_flavour
from netboot.config import Config
from netboot.errors import NetbootError
from netboot.host.files import atomic_write, sha256_file
from netboot.host.run import run

Progress = Callable[[str], None]
FLAVOURS = ("amd64", "cloud-amd64", "arm64", "cloud-arm64")
MANIFEST = "kernel.json"


class KernelError(NetbootError):
    """A kernel package cannot be found, fetched or unpacked."""


@dataclass(frozen=True)
class PackageInfo:
    """The candidate version of one Debian package, from ``apt-cache show``."""

    package: str
    version: str
    filename: str  # the pool path; its basename is what apt-get download writes
    sha256: str
    size: int


@dataclass(frozen=True)
class KernelRelease:
    """An unpacked kernel: where its vmlinuz, config and modules are."""

    version: str
    root: Path  # the package's tree: boot/ and lib/modules/<version>
    package: str
    package_version: str
    sha256: str  # of the .deb (or of the vmlinuz, for a --tree install)

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def config_file(self) -> Path:
        return self.root / "boot" / f"config-{self.version}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.version

    def kernel_config(self) -> dict[str, str]:
        """The kernel's build options (``CONFIG_RD_ZSTD`` -> ``y``); empty if it has none."""
        if not self.config_file.exists():
            return {}
        return parse_kernel_config(self.config_file.read_text())


def parse_kernel_config(text: str) -> dict[str, str]:
    """``CONFIG_X=y`` lines as a dict; ``# CONFIG_X is not set`` lines are left out."""
    options = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("CONFIG_"):
            options[name] = value.strip('"')
    return options


def parse_depends(text: str) -> list[str]:
    """The ``Depends:`` package names in ``apt-cache depends`` output, without the
    architecture a query for ``PKG:arm64`` adds to them."""
    return [m.group(1) for m in re.finditer(r"^\s*\|?Depends:\s*([^\s:]+)", text, re.M)]


def versioned_package(flavour: str, depends_output: str) -> str:
    """The versioned image package a ``linux-image-<flavour>`` metapackage depends on."""
    # linux-image-6.1.0-56-cloud-amd64: an ABI version, then exactly this flavour
    pattern = re.compile(rf"linux-image-\d+(\.\d+)*-\d+-{re.escape(flavour)}$")
    for name in parse_depends(depends_output):
        if pattern.match(name):
            return name
    raise KernelError(f"linux-image-{flavour} depends on no versioned linux-image package "
                      "(is the package index current? try 'apt-get update')")


def parse_package_infos(text: str) -> dict[str, PackageInfo]:
    """Each package's first stanza in ``apt-cache show --no-all-versions`` output, by name."""
    found: dict[str, PackageInfo] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(": ")
            if sep and not key.startswith(" "):
                fields[key] = value.strip()
        if not fields or fields.get("Package") in found:
            continue
        try:
            info = PackageInfo(fields["Package"], fields["Version"], fields["Filename"],
                               fields["SHA256"], int(fields["Size"]))
        except KeyError as err:
            raise KernelError(f"apt-cache show gave no {err.args[0]} field") from None
        found[info.package] = info
    return found


def package_infos(packages: Sequence[str], arch: Arch) -> list[PackageInfo]:
    """The candidate version of each of ``packages`` for ``arch``, from the apt index (one
    ``apt-cache`` run for all: each run reads the whole index, ~1.3 s with two
    architectures)."""
    qualified = [f"{p}:{arch}" for p in packages]
    found = parse_package_infos(run(
        ["apt-cache", "show", "--no-all-versions", *qualified],
        what=f"looking up {', '.join(qualified)} (for a foreign architecture: "
             f"'dpkg --add-architecture {arch} && apt-get update')", error=KernelError))
    missing = [p for p in packages if p not in found]
    if missing:
        raise KernelError(f"apt-cache show gave no stanza for {', '.join(missing)}")
    return [found[p] for p in packages]


def package_info(package: str, arch: Arch) -> PackageInfo:
    """The candidate version of ``package`` for ``arch``, from the apt index."""
    return package_infos([package], arch)[0]


def resolve(flavour: str) -> PackageInfo:
    """The versioned kernel package ``linux-image-<flavour>`` stands for, from the apt index."""
    if flavour not in FLAVOURS:
        raise KernelError(f"unknown kernel flavour {flavour!r} (expected one of "
                          f"{', '.join(FLAVOURS)})")
    arch = by_flavour(flavour)
    meta = f"linux-image-{flavour}:{arch}"
    package = versioned_package(flavour, run(["apt-cache", "depends", meta],
                                             what=f"resolving {meta}", error=KernelError))
    return package_info(package, arch)


def download(flavour: str, cache: Path, progress: Progress) -> Path:
    """The flavour's current kernel .deb in ``cache``, downloaded only if not already there."""
    info = resolve(flavour)
    progress(f"linux-image-{flavour} -> {info.package} {info.version}")
    return download_package(info, by_flavour(flavour), cache, progress)


def download_packages(infos: Sequence[PackageInfo], arch: Arch, cache: Path,
                      progress: Progress) -> list[Path]:
    """The .debs ``infos`` name (of ``arch``) in ``cache``, those not already there
    downloaded by one ``apt-get download``, each checked against the index's SHA-256."""
    cache.mkdir(parents=True, exist_ok=True)
    debs = {info.package: cache / Path(info.filename).name for info in infos}
    wanted = []
    for info in infos:
        deb = debs[info.package]
        if deb.exists() and sha256_file(deb) == info.sha256:
            progress(f"cached {deb}")
        else:
            wanted.append(info)
            progress(f"downloading {info.package} {info.version} ({info.size / 1e6:.1f} MB) "
                     f"to {cache}")
    if not wanted:
        return list(debs.values())
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        run(["apt-get", "download", "-q", *(f"{i.package}:{arch}={i.version}" for i in wanted)],
            what=f"downloading {', '.join(i.package for i in wanted)}", error=KernelError,
            cwd=Path(tmp))
        # apt names each PACKAGE_VERSION_ARCH.deb, the version's epoch as 1%3a
        written = {got.name.split("_", 1)[0]: got for got in Path(tmp).glob("*.deb")}
        for info in wanted:
            deb = debs[info.package]
            got = written.get(info.package)
            if got is None:
                raise KernelError(f"apt-get download wrote no {deb.name}")
            if sha256_file(got) != info.sha256:
                raise KernelError(f"{deb.name}: SHA256 does not match the package index")
            os.replace(got, deb)
    return list(debs.values())


def download_package(info: PackageInfo, arch: Arch, cache: Path, progress: Progress) -> Path:
    """The .deb ``info`` names (of ``arch``) in ``cache`` (:func:`download_packages`)."""
    return download_packages([info], arch, cache, progress)[0]


def kernel_dir(config: Config, arch: Arch = Arch.AMD64) -> Path:
    """Where ``arch``'s releases and ``current`` live (amd64's where they always have)."""
    top = config.storage.state_dir / "kernel"
    return top if arch is Arch.AMD64 else top / arch.value


def _version_of(tree: Path) -> str:
    versions = sorted(p.name for p in (tree / "lib" / "modules").glob("*") if p.is_dir())
    if len(versions) != 1:
        raise KernelError(f"{tree}: expected one lib/modules/<version> directory, "
                          f"found {len(versions)}")
    version = versions[0]
    if not (tree / "boot" / f"vmlinuz-{version}").exists():
        raise KernelError(f"{tree}: no boot/vmlinuz-{version}")
    return version


def _deb_fields(deb: Path) -> tuple[str, str, str]:
    out = run(["dpkg-deb", "--show", "--showformat=${Package}\\t${Version}\\t${Architecture}",
               str(deb)], what=f"reading {deb}", error=KernelError)
    package, version, arch = out.split("\t")
    return package, version, arch


def install(config: Config, progress: Progress, *, deb: Path | None = None,
            tree: Path | None = None, arch: Arch = Arch.AMD64) -> KernelRelease:
    """Unpack ``deb`` (or copy an extracted ``tree``), run depmod and make it ``arch``'s
    current kernel; a .deb of another architecture is refused.

    A source already installed (same SHA-256) is only made current again.
    Unpacking goes to a temporary directory renamed into place when complete,
    so a kill leaves either no release or a whole one.
    """
    if (deb is None) == (tree is None):
        raise KernelError("install needs exactly one of a .deb or an extracted tree")
    releases = kernel_dir(config, arch) / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    if deb is not None:
        if not deb.is_file():
            raise KernelError(f"{deb}: no such kernel package")
        source_hash = sha256_file(deb)
        package, package_version, deb_arch = _deb_fields(deb)
        if deb_arch != arch:
            raise KernelError(f"{deb.name} is a kernel for {deb_arch}, not {arch}")
    else:
        assert tree is not None
        version = _version_of(tree)
        source_hash = sha256_file(tree / "boot" / f"vmlinuz-{version}")
        package, package_version = f"linux-image-{version}", "(tree)"
    release = _installed(releases, source_hash)
    if release is not None:
        progress(f"kernel {release.version} from {package} {package_version} already installed")
    else:
        release = _unpack(releases, progress, deb, tree, package, package_version, source_hash)
    _make_current(config, release, arch, progress)
    return release


def _installed(releases: Path, source_hash: str) -> KernelRelease | None:
    for root in sorted(releases.iterdir()):
        release = read_release(root)
        if release is not None and release.sha256 == source_hash:
            return release
    return None


def _unpack(releases: Path, progress: Progress, deb: Path | None, tree: Path | None,
            package: str, package_version: str, source_hash: str) -> KernelRelease:
    with tempfile.TemporaryDirectory(dir=releases, prefix=".unpack-") as tmp:
        staging = Path(tmp) / "tree"
        if deb is not None:
            progress(f"extracting {deb.name}")
            run(["dpkg-deb", "-x", str(deb), str(staging)], what=f"extracting {deb}",
                error=KernelError)
        else:
            progress(f"copying {tree}")
            shutil.copytree(tree, staging, symlinks=True)
        version = _version_of(staging)
        release = KernelRelease(version, releases / version, package, package_version,
                                source_hash)
        progress(f"depmod {version}")
        run(["depmod", "-b", str(staging), version], what=f"depmod for {version}",
            error=KernelError)
        (staging / MANIFEST).write_text(json.dumps(
            {k: str(v) for k, v in asdict(release).items() if k != "root"}, indent=2) + "\n")
        if release.root.exists():  # an older build of the same version: replaced whole
            shutil.rmtree(release.root)
        os.replace(staging, release.root)
    return release


def read_release(root: Path) -> KernelRelease | None:
    """The release unpacked at ``root``, or None if there is none (or only half of one)."""
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return KernelRelease(data["version"], root.resolve(), data["package"], data["package_version"],
                         data["sha256"])


def _make_current(config: Config, release: KernelRelease, arch: Arch,
                  progress: Progress) -> None:
    """Point ``arch``'s ``current`` at ``release`` and put its vmlinuz at
    ``config.kernel_file(arch)``, atomically."""
    link = kernel_dir(config, arch) / "current"
    tmp_link = link.with_name(".current.tmp")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(Path("releases") / release.version)
    os.replace(tmp_link, link)
    target = config.kernel_file(arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or sha256_file(target) != sha256_file(release.vmlinuz):
        atomic_write(target, release.vmlinuz.read_bytes(), 0o644)
    progress(f"kernel {release.version}: {target} ({target.stat().st_size / 1e6:.1f} MB), "
             f"modules in {release.modules}")


def current(config: Config, arch: Arch = Arch.AMD64) -> KernelRelease:
    """``arch``'s kernel in use; an error that says what to run if there is none."""
    release = read_release(kernel_dir(config, arch) / "current")
    if release is None:
        fetch = "netboot kernel fetch" + ("" if arch is Arch.AMD64 else f" --arch {arch}")
        raise KernelError(f"no {arch} kernel installed under {kernel_dir(config, arch)}: "
                          f"run '{fetch}' first")
    return release
