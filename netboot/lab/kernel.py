"""A bare vmlinuz for lab VMs that boot without netboot's initramfs (reference and direct boots).

The .deb comes from :func:`netboot.initramfs.kernel.download` (resolved, verified and
cached like `netboot kernel fetch` does); only /boot/vmlinuz-* is taken out
of it, next to the .deb, so later runs work offline.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

from netboot.host.files import atomic_write
from netboot.initramfs.kernel import download
from netboot.lab.topology import LabError


def fetch_kernel(cache_dir: Path, flavour: str = "cloud-amd64") -> Path:
    """The kernel image of ``flavour``'s current package, from the cache or fetched into it."""
    deb = download(flavour, cache_dir, progress=lambda _: None)
    vmlinuz = deb.with_suffix(".vmlinuz")
    if not vmlinuz.exists():
        _extract_vmlinuz(deb, vmlinuz)
    return vmlinuz


def _extract_vmlinuz(deb: Path, dest: Path) -> None:
    """Copy ./boot/vmlinuz-* out of ``deb`` to ``dest`` (atomically: no half kernel on a kill)."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    vmlinuz = None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.isfile() and re.fullmatch(r"\./boot/vmlinuz-.+", member.name):
                source = tar.extractfile(member)
                assert source is not None
                vmlinuz = source.read()  # read on to the end: dpkg-deb complains of a broken pipe
    proc.stdout.close()
    proc.wait()
    if vmlinuz is None:
        raise LabError(f"{deb} holds no /boot/vmlinuz-*")
    atomic_write(dest, vmlinuz, 0o644)
