"""What the inventory needs from a database, and the two that give it: SQLite, PostgreSQL.

:class:`~netboot.inventory.store.Inventory` and the few callers that run
statements of their own write one SQL: ``?`` placeholders, portable statements
(``INSERT ... ON CONFLICT ... DO UPDATE``, ``RETURNING``), booleans stored as
0 and 1. A backend runs it in its dialect and holds what differs: how a write
transaction takes the inventory's one write lock, where the schema version is
kept, what tells a cache that someone committed, and the migrations' DDL.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Protocol


class Row(Protocol):
    """A result row, read by position or by column name (``dict(row)`` works too)."""

    def __getitem__(self, key: int | str) -> object: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    """The result of one statement."""

    rowcount: int

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...

    def __iter__(self) -> Iterator[Row]: ...


class Database(Protocol):
    """What :meth:`Inventory.transaction` yields and queries run on: statements in the
    inventory's SQL (``?`` placeholders)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...

    def executemany(self, sql: str, seq: Sequence[Sequence[object]]) -> Cursor: ...


class Backend(Protocol):
    """One connection to the inventory's database, in its dialect."""

    db: Database
    migrations: tuple[str, ...]  # the numbered steps of netboot.inventory.migrations

    def begin(self) -> None:
        """Start a write transaction holding the inventory's write lock from the start: one
        writer at a time, which then sees every earlier commit (no upgrade deadlocks)."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def schema_version(self) -> int:
        """How many migrations the database has run."""

    def set_schema_version(self, version: int) -> None:
        """Inside the transaction that ran migration ``version``."""

    def change_mark(self) -> Hashable:
        """A value that changes whenever anyone (this connection too) commits a change."""

    def close(self) -> None: ...
