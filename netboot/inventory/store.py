"""The client inventory: one SQLite database in WAL mode in the state dir.

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
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import fields
from ipaddress import IPv4Address
from pathlib import Path

from netboot.errors import Conflict, NotFound
from netboot.inventory.clients import Client, UnknownMachine, UnknownNote
from netboot.inventory.migrations import MIGRATIONS
from netboot.inventory.stages import Stage
from netboot.inventory.windows import (
    EXPIRED_KEPT,
    BootFile,
    BootWindow,
    Spend,
    TokenUse,
    Verdict,
    judge,
    new_tokens,
)

_CLIENT_COLUMNS = tuple(f.name for f in fields(Client))
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


class Inventory:
    """Access to the inventory database. Cheap to open; one per thread."""

    def __init__(self, path: Path, *, busy_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for suffix in ("", "-wal", "-shm"):
            _create_private(Path(f"{self.path}{suffix}"))
        _like_database(self.path)
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        try:
            _while_locked(self._enter_wal, busy_timeout)
            # FULL: a commit is on disk when it returns; a power cut loses nothing acknowledged.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _enter_wal(self) -> None:
        """Switch to WAL (persistent in the file; a no-op once done). Turning a new database
        to WAL takes an exclusive lock that SQLite tries once, without its busy handler, so
        processes opening one new database together must retry (the caller does)."""
        self._db.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the lock from the start (no upgrade deadlocks)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def change_mark(self) -> tuple[int, int]:
        """A value that changes whenever anyone commits a change: another connection (SQLite's
        data_version) or this one (its total_changes). A cache can skip re-reading while it
        stays the same."""
        return self._db.execute("PRAGMA data_version").fetchone()[0], self._db.total_changes

    # -- clients ---------------------------------------------------------------

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """Rows of a read-only statement, outside any write transaction (WAL: no lock taken)."""
        return self._db.execute(sql, params).fetchall()

    def clients(self) -> list[Client]:
        """Every client in address order (sorted here: SQLite orders the text form)."""
        rows = self._db.execute("SELECT * FROM clients")
        return sorted((Client.from_row(r) for r in rows), key=lambda c: c.ip)

    def get(self, mac: str) -> Client:
        row = self._db.execute("SELECT * FROM clients WHERE mac = ?", (mac,)).fetchone()
        if row is None:
            raise NotFound(f"no client with MAC {mac}")
        return Client.from_row(row)

    def find(self, mac: str) -> Client | None:
        row = self._db.execute("SELECT * FROM clients WHERE mac = ?", (mac,)).fetchone()
        return Client.from_row(row) if row else None

    def taken_addresses(self, db: sqlite3.Connection | None = None) -> set[IPv4Address]:
        rows = (db or self._db).execute("SELECT ip FROM clients")
        return {IPv4Address(r[0]) for r in rows}

    def insert(self, db: sqlite3.Connection, client: Client) -> None:
        """Insert inside a caller's :meth:`transaction`, naming the clash if there is one."""
        for column, value in (("mac", client.mac), ("hostname", client.hostname),
                              ("ip", str(client.ip)), ("initiator_iqn", client.initiator_iqn),
                              ("target_iqn", client.target_iqn)):
            clash = db.execute(f"SELECT mac FROM clients WHERE {column} = ?", (value,)).fetchone()
            if clash is not None:
                if column == "mac":
                    raise Conflict(f"a client with MAC {value} is already registered")
                what = column.replace("_", " ").replace("iqn", "IQN").replace("ip", "IP")
                raise Conflict(f"{what} {value} is already used by client {clash[0]}")
        names = ", ".join(_CLIENT_COLUMNS)
        marks = ", ".join(f":{c}" for c in _CLIENT_COLUMNS)
        db.execute(f"INSERT INTO clients ({names}) VALUES ({marks})", client.to_row())
        db.execute("DELETE FROM unknown_machines WHERE mac = ?", (client.mac,))

    def update(self, mac: str, **changes: object) -> Client:
        """Change some columns of one client and return the new record."""
        unknown = set(changes) - set(_CLIENT_COLUMNS)
        if unknown:
            raise ValueError(f"not client columns: {sorted(unknown)}")
        if "ip" in changes:
            changes["ip"] = str(changes["ip"])
        with self.transaction() as db:
            sets = ", ".join(f"{c} = :{c}" for c in changes)
            cur = db.execute(f"UPDATE clients SET {sets} WHERE mac = :mac", {**changes, "mac": mac})
            if cur.rowcount == 0:
                raise NotFound(f"no client with MAC {mac}")
        return self.get(mac)

    def delete(self, mac: str) -> Client:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM clients WHERE mac = ?", (mac,)).fetchone()
            if row is None:
                raise NotFound(f"no client with MAC {mac}")
            db.execute("DELETE FROM clients WHERE mac = ?", (mac,))
        return Client.from_row(row)

    def record_stage(self, mac: str, stage: Stage, at: float | None = None, *,
                     unless: Collection[Stage] = ()) -> bool:
        """Note that a client reached a boot stage (DHCP, loader, kernel, login, root).

        ``unless``: stages it must not replace, checked in the same transaction,
        so a stage seen late (the target's session list) never overwrites a
        later one that another writer recorded a moment before. True if recorded.
        """
        at = time.time() if at is None else at
        keep = sorted(Stage(s).value for s in unless)
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE clients SET last_stage = ?, last_stage_at = ?, last_seen = ? WHERE mac = ?"
                f" AND coalesce(last_stage, '') NOT IN ({', '.join('?' * len(keep))})",
                (Stage(stage).value, at, at, mac, *keep),
            )
            return cur.rowcount > 0

    # -- boot windows (netboot.inventory.windows) -------------------------------------

    @staticmethod
    def _window(db: sqlite3.Connection, row: sqlite3.Row) -> BootWindow:
        tokens = db.execute("SELECT file, token, used_at FROM boot_tokens WHERE boot_id = ?",
                            (row["boot_id"],)).fetchall()
        return BootWindow(
            boot_id=row["boot_id"], mac=row["mac"], opened=row["opened"],
            expires=row["expires"], ready=bool(row["ready"]), closed=row["closed"],
            tokens={BootFile(t["file"]): t["token"] for t in tokens},
            spent=frozenset(BootFile(t["file"]) for t in tokens if t["used_at"] is not None))

    def current_window(self, mac: str, db: sqlite3.Connection | None = None) -> BootWindow | None:
        """The client's latest boot window, open or not."""
        db = db or self._db
        row = db.execute("SELECT * FROM boot_windows WHERE mac = ? ORDER BY boot_id DESC LIMIT 1",
                         (mac,)).fetchone()
        return self._window(db, row) if row else None

    def open_window(self, mac: str, now: float, seconds: float, *,
                    ready: bool) -> tuple[BootWindow, bool]:
        """The window a PXE exchange of ``mac`` at ``now`` belongs to, and whether it is new.

        Its current window while that is reusable (same boot); otherwise a new
        one with fresh tokens, which closes the old one. ``ready``: nothing needs
        preparing first (else :meth:`window_ready` says when it is).
        """
        current = self.current_window(mac)  # most exchanges find their boot's: no write lock
        if current is not None and current.reusable(now):
            return current, False
        with self.transaction() as db:
            current = self.current_window(mac, db)
            if current is not None and current.reusable(now):
                return current, False
            db.execute("UPDATE boot_windows SET closed = ? WHERE mac = ? AND closed IS NULL",
                       (now, mac))
            db.execute("DELETE FROM boot_windows WHERE mac = ? AND expires < ?",
                       (mac, now - EXPIRED_KEPT))  # each client keeps its own few
            cur = db.execute("INSERT INTO boot_windows (mac, opened, expires, ready)"
                             " VALUES (?, ?, ?, ?)", (mac, now, now + seconds, int(ready)))
            boot_id = cur.lastrowid
            assert boot_id is not None
            tokens = new_tokens()
            db.executemany("INSERT INTO boot_tokens (token, boot_id, file) VALUES (?, ?, ?)",
                           [(token, boot_id, file.value) for file, token in tokens.items()])
            return BootWindow(boot_id, mac, now, now + seconds, ready, None, tokens), True

    def window_ready(self, boot_id: int) -> None:
        """The window's client is prepared (old sessions dropped, secrets renewed)."""
        with self.transaction() as db:
            db.execute("UPDATE boot_windows SET ready = 1 WHERE boot_id = ?", (boot_id,))

    def unready_windows(self, now: float) -> list[BootWindow]:
        """Open windows still to be prepared (a serve stopped while preparing them)."""
        rows = self._db.execute("SELECT * FROM boot_windows WHERE ready = 0 AND closed IS NULL"
                                " AND expires > ? ORDER BY boot_id", (now,)).fetchall()
        return [self._window(self._db, row) for row in rows]

    def close_window(self, mac: str, now: float) -> bool:
        """Close the client's open window (it reported root); True if one was open."""
        with self.transaction() as db:
            cur = db.execute("UPDATE boot_windows SET closed = ? WHERE mac = ? AND closed IS NULL"
                             " AND expires > ?", (now, mac, now))
            return cur.rowcount > 0

    def spend_token(self, token: str, mac: str, file: BootFile, user: str, now: float, *,
                    spend: bool = True) -> Spend:
        """Judge ``token`` for client ``mac``'s ``file`` and, if granted (and ``spend``),
        spend it on ``user``."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT t.file AS file, t.used_at AS used_at, t.used_by AS used_by, w.*"
                " FROM boot_tokens t JOIN boot_windows w USING (boot_id) WHERE t.token = ?",
                (token,)).fetchone()
            use = (TokenUse(BootFile(row["file"]), self._window(db, row), row["used_at"],
                            row["used_by"]) if row else None)
            verdict = judge(use, mac, file, now)
            if verdict.verdict is Verdict.GRANTED and spend:
                db.execute("UPDATE boot_tokens SET used_at = ?, used_by = ? WHERE token = ?",
                           (now, user, token))
            return verdict

    def spend_named(self, mac: str, file: BootFile, user: str, now: float, *,
                    spend: bool = True) -> Spend:
        """Spend the current window's token for ``file``, which the client cannot name
        (PXELINUX asks for its config by a fixed name)."""
        window = self.current_window(mac)
        if window is None:
            return Spend(Verdict.UNKNOWN)
        return self.spend_token(window.tokens[file], mac, file, user, now, spend=spend)

    # -- machines that are not registered ------------------------------------------

    def note_unknowns(self, notes: list[UnknownNote], keep: int | None = None) -> list[str]:
        """Record requests from unregistered MACs in one transaction, then forget all but
        the ``keep`` most recently seen; the MACs seen for the first time."""
        first = []
        with self.transaction() as db:
            for note in notes:
                cur = db.execute(
                    "UPDATE unknown_machines SET last_seen = ?, requests = requests + 1,"
                    " vendor_class = coalesce(?, vendor_class), arch = coalesce(?, arch)"
                    " WHERE mac = ?", (note.at, note.vendor_class, note.arch, note.mac))
                if cur.rowcount:
                    continue
                db.execute(
                    "INSERT INTO unknown_machines (mac, first_seen, last_seen, vendor_class,"
                    " arch) VALUES (?, ?, ?, ?, ?)",
                    (note.mac, note.at, note.at, note.vendor_class, note.arch))
                first.append(note.mac)
            if keep is not None:
                db.execute(
                    "DELETE FROM unknown_machines WHERE mac NOT IN (SELECT mac FROM"
                    " unknown_machines ORDER BY last_seen DESC, mac LIMIT ?)", (keep,))
        return first

    def unknown_machines(self) -> list[UnknownMachine]:
        rows = self._db.execute("SELECT * FROM unknown_machines ORDER BY first_seen")
        return [UnknownMachine(**dict(r)) for r in rows]


InventoryFactory = Callable[[], Inventory]  # how a service opens its own connections
