"""The inventory in a PostgreSQL database, for several netboot servers sharing one.

The same guarantees as the SQLite store (:mod:`netboot.inventory.sqlite`):

- one writer at a time, seeing every earlier commit: each write transaction
  starts (READ COMMITTED) by bumping the one row of ``inventory_state``, whose
  row lock is the inventory's write lock, held to COMMIT or ROLLBACK, whichever
  server the writer runs on; so concurrent ``client add`` calls never pick the
  same address;
- a killed process leaves the last committed state: PostgreSQL rolls back the
  transaction of a connection that went away;
- that same bump is the change mark: a cache (DHCP's client directory, the
  target watch, the window preparer) polls one row to see that anyone, on any
  server, committed.

The password, if the server wants one, comes from ``inventory.password_file``
and goes to libpq in memory only: never argv, the environment or a log line.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from netboot.errors import NetbootError
from netboot.inventory.migrations import POSTGRESQL

# Group read is allowed: serve's network part (server.user) reads it by group, as it
# shares the SQLite file; nothing else.
PASSWORD_FILE_MODES = 0o640

_STATE = """
CREATE TABLE IF NOT EXISTS inventory_state (
    single BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
    schema_version INTEGER NOT NULL,
    changes BIGINT NOT NULL
)"""
_LITERALS = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""")


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The inventory's SQL as psycopg takes it: ``?`` becomes ``%s`` and ``%`` ``%%``,
    outside quoted strings and names (statements are netboot's own, never user text)."""
    parts = _LITERALS.split(sql)
    return "".join(part if i % 2 else part.replace("%", "%%").replace("?", "%s")
                   for i, part in enumerate(parts))


def _params(params: Sequence[object]) -> tuple[object, ...]:
    """Booleans as the 0 and 1 the schema stores (SQLite's way)."""
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class _Row(tuple):
    """A row read by position or by column name, as :class:`sqlite3.Row`."""

    _index: dict[str, int]

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: psycopg.Cursor) -> Callable[[Sequence[object]], _Row]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[object]) -> _Row:
        row = _Row(values)
        row._index = index
        return row

    return make


def read_password(path: Path) -> str:
    """The password alone on the first line of ``path``; refused if anyone but its owner
    and group may read it, or its group may write it."""
    try:
        with open(path) as file:
            mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
            text = file.read()
    except OSError as err:
        raise NetbootError(f"cannot read inventory.password_file {path}: "
                           f"{err.strerror}") from None
    if mode & ~PASSWORD_FILE_MODES:
        raise NetbootError(f"inventory.password_file {path} has mode {mode:04o}: others may "
                           "read or change it; chmod 600 it")
    password = text.split("\n", 1)[0]
    if not password:
        raise NetbootError(f"inventory.password_file {path} is empty: write the password "
                           "on its first line")
    return password


class _Database:
    """A :class:`~netboot.inventory.backend.Database` over one psycopg connection, made
    again by ``connect`` when it broke (the server restarted, or ended the session)
    outside a transaction; the statement that found it broken fails, the next one runs."""

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self.connection = connect()
        self.in_transaction = False  # kept by the backend: a broken one is the caller's

    def _live(self) -> psycopg.Connection:
        if self.connection.broken and not self.in_transaction:
            self.connection.close()
            self.connection = self._connect()
        return self.connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> psycopg.Cursor:
        return self._live().execute(translate(sql), _params(params))

    def executemany(self, sql: str, seq: Sequence[Sequence[object]]) -> psycopg.Cursor:
        cursor = self._live().cursor()
        cursor.executemany(translate(sql), [_params(p) for p in seq])
        return cursor


def _connect(url: str, password_file: Path | None, busy_timeout: float) -> psycopg.Connection:
    """A connection in autocommit (transactions are begun explicitly) whose writers wait
    for the write lock as long as SQLite's busy timeout lets them."""
    secret = {"password": read_password(password_file)} if password_file else {}
    try:
        connection = psycopg.connect(url, autocommit=True, row_factory=_rows,
                                     application_name="netboot", **secret)
    except psycopg.OperationalError as err:
        raise NetbootError(f"cannot open the PostgreSQL inventory at {url}: "
                           f"{str(err).strip()}") from None
    try:
        connection.execute("SELECT set_config('lock_timeout', %s, false)",
                           (f"{int(busy_timeout * 1000)}ms",))
    except BaseException:
        connection.close()
        raise
    return connection


class PostgresBackend:
    """A :class:`~netboot.inventory.backend.Backend` on the database at libpq URL ``url``."""

    migrations = POSTGRESQL

    def __init__(self, url: str, password_file: Path | None, busy_timeout: float) -> None:
        self.db = _Database(functools.partial(_connect, url, password_file, busy_timeout))
        try:
            self._ensure_state()
        except BaseException:
            self.db.connection.close()
            raise

    def _ensure_state(self) -> None:
        """Make the row that holds the schema version and the change mark, once: processes
        opening a new database together take turns (an advisory lock), since concurrent
        CREATE TABLE IF NOT EXISTS can fail in PostgreSQL."""
        if self.db.execute("SELECT to_regclass('inventory_state')").fetchone()[0] is not None:
            return
        self.db.execute("BEGIN")
        try:
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext('netboot inventory'))")
            self.db.execute(_STATE)
            self.db.execute("INSERT INTO inventory_state (schema_version, changes)"
                            " VALUES (0, 0) ON CONFLICT DO NOTHING")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def begin(self) -> None:
        # READ COMMITTED: each later statement sees what writers committed before this one
        # got the lock (a snapshot taken at BEGIN, as in REPEATABLE READ, would not)
        self.db.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        self.db.in_transaction = True
        self.db.execute("UPDATE inventory_state SET changes = changes + 1")

    def commit(self) -> None:
        try:
            self.db.execute("COMMIT")
        finally:
            self.db.in_transaction = False

    def rollback(self) -> None:
        self.db.in_transaction = False
        if not self.db.connection.broken:  # else the server has rolled it back
            self.db.execute("ROLLBACK")

    def schema_version(self) -> int:
        return self.db.execute("SELECT schema_version FROM inventory_state").fetchone()[0]

    def set_schema_version(self, version: int) -> None:
        self.db.execute("UPDATE inventory_state SET schema_version = ?", (version,))

    def change_mark(self) -> int:
        return self.db.execute("SELECT changes FROM inventory_state").fetchone()[0]

    def close(self) -> None:
        self.db.connection.close()
