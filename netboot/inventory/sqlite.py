"""The inventory in one SQLite database in WAL mode in the state dir: the default.

SQLite gives what the server and several CLI calls need at once: atomic
transactions (a ``kill -9`` at any moment leaves the last committed state),
one writer at a time with waiting readers (``BEGIN IMMEDIATE`` plus a busy
timeout), and no daemon. The file holds CHAP secrets, so it and its WAL and
shared-memory files are created mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

from netboot.inventory.migrations import SQLITE

# What the database files may allow: their owner, and the group of serve's network part
# (netboot.serve.supervise shares them with it); never anyone else.
PRIVATE_MODES = 0o660


def _create_private(path: Path) -> None:
    """Make ``path`` exist as an empty 0600 file without truncating an existing one, which
    keeps at most :data:`PRIVATE_MODES`.

    An existing file is never opened: closing any descriptor of a file drops
    every POSIX lock this process holds on it, SQLite's included, and then
    another process closing its connection takes itself for the last one and
    deletes the -wal and -shm files under this process's open connections.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & ~PRIVATE_MODES:
            os.chmod(path, mode & PRIVATE_MODES)
        return
    os.close(fd)


def _like_database(path: Path) -> None:
    """Give the -wal and -shm files the database's owner, group and mode, as SQLite does with
    owners for those it makes as root: serve's network part (another user, sharing the
    database by group) must open them too after root (the CLI, serve's root part) made them."""
    if os.geteuid() != 0:
        return
    db = path.stat()
    for suffix in ("-wal", "-shm"):
        other = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):  # SQLite removes them at the last close
            info = other.stat()
            if (info.st_uid, info.st_gid) != (db.st_uid, db.st_gid):
                os.chown(other, db.st_uid, db.st_gid)
            if stat.S_IMODE(info.st_mode) != stat.S_IMODE(db.st_mode):
                os.chmod(other, stat.S_IMODE(db.st_mode))


def _while_locked(attempt: Callable[[], None], timeout: float) -> None:
    """Call ``attempt`` until it does not fail with SQLite's "database is locked", for at
    most ``timeout`` seconds, backing off from 5 ms to 100 ms."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            attempt()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class SqliteBackend:
    """A :class:`~netboot.inventory.backend.Backend` on the SQLite file at ``path``."""

    migrations = SQLITE

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for suffix in ("", "-wal", "-shm"):
            _create_private(Path(f"{path}{suffix}"))
        _like_database(path)
        self.db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row
        try:
            _while_locked(self._enter_wal, busy_timeout)
            # FULL: a commit is on disk when it returns; a power cut loses nothing acknowledged.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            self.db.close()
            raise

    def _enter_wal(self) -> None:
        """Switch to WAL (persistent in the file; a no-op once done). Turning a new database
        to WAL takes an exclusive lock that SQLite tries once, without its busy handler, so
        processes opening one new database together must retry (the caller does)."""
        self.db.execute("PRAGMA journal_mode=WAL")

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        self.db.execute("ROLLBACK")

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version={int(version)}")

    def change_mark(self) -> tuple[int, int]:
        """Another connection's commits move SQLite's data_version, this one's its
        total_changes."""
        return self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes

    def close(self) -> None:
        self.db.close()
