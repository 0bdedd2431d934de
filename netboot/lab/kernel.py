"""A Debian kernel for lab VMs, fetched with apt and unpacked with dpkg-deb into a cache.

The metapackage (linux-image-cloud-amd64) only depends on the versioned
image package; that one's .deb holds /boot/vmlinuz-<version>. Both the .deb
and the extracted kernel stay in the cache, so later runs work offline.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

from netboot.lab.topology import LabError

_DEPENDS = re.compile(r"^\s*Depends:\s*(linux-image-\S+)", re.MULTILINE)


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} not found: the lab needs apt and dpkg (Debian)") from None
    if proc.returncode != 0:
        raise LabError(f"'{' '.join(argv)}' failed: {proc.stderr.strip()}")
    return proc.stdout


def image_package(flavour: str) -> str:
    """The versioned package behind ``linux-image-<flavour>``: linux-image-6.1.0-56-cloud-amd64."""
    meta = f"linux-image-{flavour}"
    match = _DEPENDS.search(_run(["apt-cache", "depends", meta]))
    if match is None:
        raise LabError(f"{meta} depends on no linux-image package: is it the right flavour?")
    return match.group(1)


def fetch_kernel(cache_dir: Path, flavour: str = "cloud-amd64") -> Path:
    """The kernel image of ``flavour``'s current version, from the cache or fetched into it."""
    package = image_package(flavour)
    vmlinuz = cache_dir / f"{package}.vmlinuz"
    if vmlinuz.exists():
        return vmlinuz
    cache_dir.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache_dir.glob(f"{package}_*.deb"))
    if not debs:
        _run(["apt-get", "download", package], cwd=cache_dir)
        debs = sorted(cache_dir.glob(f"{package}_*.deb"))
        if not debs:
            raise LabError(f"apt-get download {package} left no .deb in {cache_dir}")
    _extract_vmlinuz(debs[-1], vmlinuz)
    return vmlinuz


def _extract_vmlinuz(deb: Path, dest: Path) -> None:
    """Copy ./boot/vmlinuz-* out of ``deb`` to ``dest`` (atomically: no half kernel on a kill)."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    tmp = dest.with_suffix(".part")
    found = False
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.isfile() and re.fullmatch(r"\./boot/vmlinuz-.+", member.name):
                source = tar.extractfile(member)
                assert source is not None
                tmp.write_bytes(source.read())
                found = True  # read on to the end: dpkg-deb complains of a broken pipe
    proc.stdout.close()
    proc.wait()
    if not found:
        tmp.unlink(missing_ok=True)
        raise LabError(f"{deb} holds no /boot/vmlinuz-*")
    os.replace(tmp, dest)
