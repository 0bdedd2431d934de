"""Running the host's tools (mke2fs, sfdisk, depmod, zstd, ...) with one error shape.

A tool that fails is reported as ``<what>: <its last line of stderr>``: what
netboot was doing, then the tool's own last word, which is the one that
names the problem. A tool that is missing is reported with the Debian
package that brings it (all are in debian-packages.txt, which ``make setup``
installs). Tools whose output is streamed while they run (mmdebstrap, the
lab's processes, tgtd) are started by their callers, not here.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Container, Mapping, Sequence
from pathlib import Path

from netboot.errors import NetbootError

log = logging.getLogger(__name__)

# Each program netboot runs, by its name, and the Debian package it comes from.
PACKAGES: Mapping[str, str] = {
    "apt-cache": "apt",
    "apt-get": "apt",
    "busybox": "busybox-static",
    "ceph": "ceph-common",
    "ceph-authtool": "ceph-common",
    "ceph-mgr": "ceph-mgr",
    "ceph-mon": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "chroot": "coreutils",
    "debugfs": "e2fsprogs",
    "depmod": "kmod",
    "dnsmasq": "dnsmasq-base",
    "dpkg-deb": "dpkg",
    "dpkg-query": "dpkg",
    "e2fsck": "e2fsprogs",
    "grub-mkimage": "grub-pc-bin",
    "ipmi_sim": "openipmi",
    "ipmitool": "ipmitool",
    "ip": "iproute2",
    "mke2fs": "e2fsprogs",
    "mmdebstrap": "mmdebstrap",
    "nsenter": "util-linux",
    "monmaptool": "ceph-common",
    "qemu-system-x86_64": "qemu-system-x86",
    "rbd": "ceph-common",
    "resize2fs": "e2fsprogs",
    "sfdisk": "fdisk",
    "ss": "iproute2",
    "tar": "tar",
    "tgtd": "tgt",
    "zstd": "zstd",
}


def not_installed(program: str) -> str:
    """The sentence for a missing ``program`` (a name or a path), naming its package."""
    package = PACKAGES.get(Path(program).name)
    if package is None:
        return f"{program} is not installed"
    return f"{program} is not installed (Debian package {package}; `make setup` installs it)"


def _completed(argv: Sequence[str], what: str, error: type[NetbootError],
               ok: Container[int] | None, input: str | bytes | None, cwd: Path | None,
               text: bool) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, text=text,
                              cwd=cwd, check=False)
    except FileNotFoundError as err:
        if err.filename != argv[0]:  # the working directory is missing
            raise error(f"{what}: {err.filename}: {err.strerror}") from None
        raise error(not_installed(argv[0])) from None
    if ok is not None and done.returncode not in ok:
        said = done.stderr or done.stdout
        lines = (said if text else said.decode(errors="replace")).strip().splitlines()
        raise error(f"{what}: {lines[-1] if lines else f'exit {done.returncode}'}")
    return done


def run(argv: Sequence[str], *, what: str, error: type[NetbootError] = NetbootError,
        ok: Container[int] | None = (0,), input: str | None = None,
        cwd: Path | None = None) -> str:
    """Run ``argv`` to its end and return its stdout as text.

    An exit status not in ``ok`` (None: any status is an answer) raises
    ``error("<what>: <last line of stderr, else of stdout, else exit N>")``;
    a missing program raises ``error`` naming its Debian package.
    """
    return _completed(argv, what, error, ok, input, cwd, text=True).stdout


def run_bytes(argv: Sequence[str], *, what: str, error: type[NetbootError] = NetbootError,
              input: bytes | None = None) -> bytes:
    """:func:`run` for a filter whose input and output are bytes (a compressor)."""
    return _completed(argv, what, error, (0,), input, None, text=False).stdout


def end_process(proc: subprocess.Popen | None, timeout: float, what: str) -> None:
    """Stop a child netboot started (SIGTERM, then SIGKILL after ``timeout`` seconds,
    saying so with ``what``); nothing if there is none or it has ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0f s; killing it", what, timeout)
        proc.kill()
        proc.wait()
