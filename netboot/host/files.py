"""Files on the host, durably: digests, syncs, atomic writes and temporary names.

Every file netboot makes whole (an image, a root LUN, a state file) is made
under a temporary name beside its final one and renamed into place, so a
crash leaves the old file or the new one, never half of one. A temporary
name carries the pid of the process that made it (``.<final name>.tmp-<pid>``);
:func:`remove_stale_temps` deletes those whose process is gone.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".tmp-"
# .<final name>.tmp-<pid>, maybe followed by a suffix a tool needs (".tar.zst")
_TEMP_NAME = re.compile(rf"^\.(?P<final>.+){re.escape(TEMP_MARK)}(?P<pid>\d+)(\..*)?$")


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in blocks (kernel packages are tens of MB)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync_file(path: Path) -> None:
    """Make the contents of the file ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_sparse(path: Path, size: int) -> None:
    """A new file ``path`` (it must not exist) of ``size`` bytes that are all a hole, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final: Path, suffix: str = "") -> Path:
    """Where ``final`` is made before it is renamed into place: hidden, beside it, and
    named with this process's pid so that :func:`remove_stale_temps` can tell if it is
    stale. ``suffix`` is for tools that read the format from the name (``.tar.zst``)."""
    return final.with_name(f".{final.name}{TEMP_MARK}{os.getpid()}{suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and someone else's
        return True
    return True


def _remove_dead(candidates: Iterable[Path], of: Collection[str] | None = None) -> list[Path]:
    """Delete the temporary files and directories among ``candidates`` whose process is
    gone and, with ``of``, whose final name is one of those."""
    removed = []
    for path in candidates:
        match = _TEMP_NAME.match(path.name)
        if (match is None or (of is not None and match["final"] not in of)
                or _pid_alive(int(match["pid"]))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def remove_stale_temps(directory: Path, of: Collection[str] | None = None) -> list[Path]:
    """Delete the temporary files and directories in ``directory`` whose process is gone
    (killed mid-way); those of live processes stay. With ``of``, only the temporaries of
    those final names (a directory that also holds a user's files). Returns what was
    removed."""
    with os.scandir(directory) as entries:  # not Path.glob: its per-name match in Python
        names = [e.name for e in entries if e.name[0] == "." and TEMP_MARK in e.name]
    return _remove_dead((directory / name for name in names), of)


@contextmanager
def atomic_path(final: Path, suffix: str = "", mode: int | None = None) -> Iterator[Path]:
    """The temporary path (see :func:`temp_path`) to make ``final`` at; when the block
    ends without an error that file is synced, given ``mode``, renamed to ``final`` and
    the directory synced, so a crash leaves the old ``final`` or the new one. On an
    error the temporary file is removed and ``final`` is untouched."""
    temp = temp_path(final, suffix)
    try:
        yield temp
        fsync_file(temp)
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


@contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (made 0600, its directory 0700) for the block;
    yields False, holding nothing, when ``wait`` is off and another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` through :func:`atomic_path`. A temporary file a
    killed writer left for ``path`` is removed first."""
    _remove_dead(path.parent.glob(f".{glob.escape(path.name)}{TEMP_MARK}*"))
    with atomic_path(path, mode=mode) as temp:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with open(fd, "wb") as f:
            f.write(data)


@contextmanager
def private_file(text: str, prefix: str) -> Iterator[Path]:
    """``text`` in a file of mode 0600 in a new directory of mode 0700 (named ``prefix``...),
    both removed when the block ends: for a tool that reads a secret, or a certificate,
    only from a file."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        path = Path(directory) / "file"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        yield path
