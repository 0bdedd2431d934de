"""The client inventory: one API over SQLite (the default) or PostgreSQL (shared).

Every caller goes through :class:`Inventory`; what differs between the two
databases (placeholders, how a write transaction takes the write lock, the
schema version, the change mark) is in their backends
(:mod:`netboot.inventory.sqlite`, :mod:`netboot.inventory.postgres`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from ipaddress import IPv4Address
from pathlib import Path

from netboot.config import Config
from netboot.errors import Conflict, NotFound
from netboot.inventory.backend import Backend, Database, Row
from netboot.inventory.clients import Client, UnknownMachine, UnknownNote
from netboot.inventory.servers import PortalRole, ServerRecord
from netboot.inventory.sqlite import SqliteBackend
from netboot.inventory.stages import Stage
from netboot.inventory.timeline import KEPT_ROWS
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
# what DHCP answers from (netboot.dhcp.directory.answered_alike): a change moves the
# directory version
DIRECTORY_COLUMNS = frozenset({"mac", "ip", "hostname"})


def _backend(location: Path | str, password_file: Path | None, busy_timeout: float) -> Backend:
    if isinstance(location, str):
        from netboot.inventory.postgres import PostgresBackend  # psycopg only when it is used
        return PostgresBackend(location, password_file, busy_timeout)
    return SqliteBackend(location, busy_timeout)


class Inventory:
    """Access to the inventory database. Cheap to open; one per thread.

    ``location``: the SQLite file's path, or a PostgreSQL URL (a string;
    ``password_file`` holds its password, if it needs one).
    """

    def __init__(self, location: Path | str, *, password_file: Path | None = None,
                 busy_timeout: float = 60.0) -> None:
        self.location = location
        self._backend = _backend(location, password_file, busy_timeout)
        self._db: Database = self._backend.db
        try:
            self._migrate()
        except BaseException:
            self._backend.close()
            raise

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        migrations = self._backend.migrations
        if self._backend.schema_version() == len(migrations):
            return  # up to date: no write lock taken, and the change mark stays
        with self.transaction() as db:
            version = self._backend.schema_version()
            for number, script in enumerate(migrations[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                self._backend.set_schema_version(number)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction that holds the write lock from the start (no upgrade
        deadlocks; one writer at a time, on every server sharing the database)."""
        self._backend.begin()
        try:
            yield self._db
        except BaseException:
            self._backend.rollback()
            raise
        self._backend.commit()

    def change_mark(self) -> Hashable:
        """A value that changes whenever anyone commits a change (another connection, this
        one, another server). A cache can skip re-reading while it stays the same."""
        return self._backend.change_mark()

    # -- clients ---------------------------------------------------------------

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[Row]:
        """Rows of a read-only statement, outside any write transaction (no lock taken)."""
        return self._db.execute(sql, params).fetchall()

    def clients(self) -> list[Client]:
        """Every client in address order (sorted here: the databases order the text form)."""
        rows = self._db.execute("SELECT * FROM clients")
        return sorted((Client.from_row(r) for r in rows), key=lambda c: c.ip)

    def client_addresses(self) -> dict[IPv4Address, str]:
        """Every client's address to its MAC, read without making whole records."""
        rows = self._db.execute("SELECT ip, mac FROM clients")
        return {IPv4Address(ip): mac for ip, mac in rows}

    def unsettled_clients(self) -> list[Client]:
        """Clients an add, reimage or reset is making a root for (or was, if it was killed):
        not yet provisioned, or with a next root (``next_lun_path``). Read at every ``client
        add``, so it costs the few such clients, not a read of every registered one."""
        rows = self._db.execute(
            "SELECT * FROM clients WHERE provisioned = 0 OR next_lun_path IS NOT NULL")
        return [Client.from_row(r) for r in rows]

    def directory_version(self) -> int:
        """A number that moves when a client is added or removed or its address or hostname
        changes, and at no other write: DHCP's client cache re-reads only then."""
        return self._db.execute("SELECT version FROM directory_version").fetchone()[0]

    def get(self, mac: str) -> Client:
        row = self._db.execute("SELECT * FROM clients WHERE mac = ?", (mac,)).fetchone()
        if row is None:
            raise NotFound(f"no client with MAC {mac}")
        return Client.from_row(row)

    def find(self, mac: str) -> Client | None:
        row = self._db.execute("SELECT * FROM clients WHERE mac = ?", (mac,)).fetchone()
        return Client.from_row(row) if row else None

    def taken_addresses(self, db: Database | None = None) -> set[int]:
        """The clients' addresses as integers (what :func:`pick_address` compares), read
        without an IPv4Address each (a tenth of the time with 10,000 clients)."""
        rows = (db or self._db).execute("SELECT ip FROM clients")
        return {int.from_bytes(socket.inet_aton(r[0]), "big") for r in rows}

    def insert(self, db: Database, client: Client) -> None:
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
        for column, value in (("name", client.hostname), ("initiator_iqn", client.initiator_iqn)):
            clash = db.execute(f"SELECT name FROM hosts WHERE {column} = ?", (value,)).fetchone()
            if clash is not None:  # a host's name is its target's and its CHAP account's too
                what = "hostname" if column == "name" else "initiator IQN"
                raise Conflict(f"{what} {value} is already used by SAN host {clash[0]}")
        row = client.to_row()
        names = ", ".join(_CLIENT_COLUMNS)
        marks = ", ".join("?" for _ in _CLIENT_COLUMNS)
        db.execute(f"INSERT INTO clients ({names}) VALUES ({marks})",
                   tuple(row[c] for c in _CLIENT_COLUMNS))
        _directory_moved(db)
        db.execute("DELETE FROM unknown_machines WHERE mac = ?", (client.mac,))

    def update(self, mac: str, **changes: object) -> Client:
        """Change some columns of one client and return the new record."""
        unknown = set(changes) - set(_CLIENT_COLUMNS)
        if unknown:
            raise ValueError(f"not client columns: {sorted(unknown)}")
        if "ip" in changes:
            changes["ip"] = str(changes["ip"])
        with self.transaction() as db:
            sets = ", ".join(f"{c} = ?" for c in changes)
            cur = db.execute(f"UPDATE clients SET {sets} WHERE mac = ?", (*changes.values(), mac))
            if cur.rowcount == 0:
                raise NotFound(f"no client with MAC {mac}")
            if DIRECTORY_COLUMNS & changes.keys():
                _directory_moved(db)
        return self.get(mac)

    def delete(self, mac: str) -> Client:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM clients WHERE mac = ?", (mac,)).fetchone()
            if row is None:
                raise NotFound(f"no client with MAC {mac}")
            db.execute("DELETE FROM clients WHERE mac = ?", (mac,))
            _directory_moved(db)
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
        marks = ", ".join("?" * len(keep))
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE clients SET last_stage = ?, last_stage_at = ?, last_seen = ? WHERE mac = ?"
                + (f" AND coalesce(last_stage, '') NOT IN ({marks})" if keep else ""),
                (Stage(stage).value, at, at, mac, *keep),
            )
            if cur.rowcount == 0:
                return False
            db.execute("INSERT INTO stage_log (mac, stage, at) VALUES (?, ?, ?)",
                       (mac, Stage(stage).value, at))
            _prune_stage_log(db, [(mac, Stage(stage))])
            _note_booted_image(db, [(mac, Stage(stage))])
            return True

    def record_stages(self, reached: Sequence[tuple[str, Stage, float]],
                      repeat_after: float) -> None:
        """Note many (MAC, stage, time) at once, in one transaction (a commit, on PostgreSQL
        a round trip, per batch rather than per client). A stage equal to the one recorded
        less than ``repeat_after`` seconds before is not written again: one step of one
        boot seen twice (a PXE ROM's ACK, then iPXE's); with 0, every stage is written."""
        repeated = ("NOT (coalesce(last_stage, '') = ? AND last_stage_at IS NOT NULL "
                    "AND ? - last_stage_at >= 0 AND ? - last_stage_at < ?)")
        with self.transaction() as db:
            db.executemany(  # logged first: the repeat test reads the stage before this one
                "INSERT INTO stage_log (mac, stage, at) SELECT ?, ?, ? WHERE EXISTS "
                f"(SELECT 1 FROM clients WHERE mac = ? AND {repeated})",
                [(mac, stage.value, at, mac, stage.value, at, at, repeat_after)
                 for mac, stage, at in reached])
            # the latest stage stays last: the TFTP workers and the HTTP server each write
            # their own batches, so a boot's earlier stage may be committed after a later one
            db.executemany(
                "UPDATE clients SET last_stage = ?, last_stage_at = ?, last_seen = ? "
                f"WHERE mac = ? AND {repeated} "
                "AND (last_stage_at IS NULL OR last_stage_at <= ?)",
                [(stage.value, at, at, mac, stage.value, at, at, repeat_after, at)
                 for mac, stage, at in reached])
            _prune_stage_log(db, [(mac, stage) for mac, stage, _ in reached])
            _note_booted_image(db, [(mac, stage) for mac, stage, _ in reached])

    def stage_log(self, mac: str | None = None) -> dict[str, list[tuple[Stage, float]]]:
        """Every stage each client (or only ``mac``) reached that the log still keeps, by
        MAC, in time order (:func:`netboot.inventory.timeline.split_boots` cuts it in boots)."""
        where, params = ("WHERE mac = ?", (mac,)) if mac is not None else ("", ())
        logs: dict[str, list[tuple[Stage, float]]] = {}
        for row in self._db.execute(
                f"SELECT mac, stage, at FROM stage_log {where} ORDER BY mac, at", params):
            logs.setdefault(row[0], []).append((Stage(row[1]), row[2]))
        return logs

    # -- boot windows (netboot.inventory.windows) -------------------------------------

    @staticmethod
    def _window(db: Database, row: Row) -> BootWindow:
        tokens = db.execute("SELECT file, token, used_at FROM boot_tokens WHERE boot_id = ?",
                            (row["boot_id"],)).fetchall()
        return BootWindow(
            boot_id=row["boot_id"], mac=row["mac"], opened=row["opened"],
            expires=row["expires"], ready=bool(row["ready"]), closed=row["closed"],
            tokens={BootFile(t["file"]): t["token"] for t in tokens},
            spent=frozenset(BootFile(t["file"]) for t in tokens if t["used_at"] is not None))

    def current_window(self, mac: str, db: Database | None = None) -> BootWindow | None:
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
            boot_id = db.execute("INSERT INTO boot_windows (mac, opened, expires, ready)"
                                 " VALUES (?, ?, ?, ?) RETURNING boot_id",
                                 (mac, now, now + seconds, int(ready))).fetchall()[0][0]
            tokens = new_tokens()
            db.executemany("INSERT INTO boot_tokens (token, boot_id, file) VALUES (?, ?, ?)",
                           [(token, boot_id, file.value) for file, token in tokens.items()])
            return BootWindow(boot_id, mac, now, now + seconds, ready, None, tokens), True

    def window_ready(self, boot_id: int) -> None:
        """The window's client is prepared (old sessions dropped, secrets renewed)."""
        with self.transaction() as db:
            db.execute("UPDATE boot_windows SET ready = 1 WHERE boot_id = ?", (boot_id,))

    def rotate_window_secrets(self, boot_id: int, mac: str, chap_secret: str,
                              mutual_secret: str) -> bool:
        """Give the client of window ``boot_id`` these secrets, unless a server did so for
        that window already (with two servers, the first to prepare it); whether it did."""
        with self.transaction() as db:
            if db.execute("UPDATE boot_windows SET rotated = 1 WHERE boot_id = ? AND rotated = 0",
                          (boot_id,)).rowcount == 0:
                return False
            db.execute("UPDATE clients SET chap_secret = ?, mutual_secret = ? WHERE mac = ?",
                       (chap_secret, mutual_secret, mac))
            return True

    def window_preparers(self, boot_id: int) -> set[str]:
        """The servers that prepared window ``boot_id`` on their tgtd."""
        rows = self._db.execute("SELECT server FROM window_preparations WHERE boot_id = ?",
                                (boot_id,))
        return {r[0] for r in rows}

    def record_preparation(self, boot_id: int, server: str, required: Collection[str]) -> bool:
        """``server`` prepared window ``boot_id``; the window is marked ready once every one
        of ``required`` has. Whether it is ready now."""
        with self.transaction() as db:
            db.execute("INSERT INTO window_preparations (boot_id, server) VALUES (?, ?) "
                       "ON CONFLICT DO NOTHING", (boot_id, server))
            done = {r[0] for r in db.execute(
                "SELECT server FROM window_preparations WHERE boot_id = ?", (boot_id,))}
            if not set(required) <= done:
                return False
            db.execute("UPDATE boot_windows SET ready = 1 WHERE boot_id = ?", (boot_id,))
            return True

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
        spend it on ``user``.

        A token that is not to be spent now (not ready, spent, expired, unknown) is judged
        from a plain read, outside any write transaction: a boot storm's requests wait for
        their windows by asking again and again, and taking the write lock for each ask
        held up the windows' preparation and every other writer. A grant is judged again
        under the lock, so two requests never both spend one token."""
        first = judge(self._token_use(self._db, token), mac, file, now)
        if first.verdict is not Verdict.GRANTED or not spend:
            return first
        with self.transaction() as db:
            verdict = judge(self._token_use(db, token), mac, file, now)
            if verdict.verdict is Verdict.GRANTED:
                db.execute("UPDATE boot_tokens SET used_at = ?, used_by = ? WHERE token = ?",
                           (now, user, token))
            return verdict

    def _token_use(self, db: Database, token: str) -> TokenUse | None:
        row = db.execute(
            "SELECT t.file AS file, t.used_at AS used_at, t.used_by AS used_by, w.*"
            " FROM boot_tokens t JOIN boot_windows w USING (boot_id) WHERE t.token = ?",
            (token,)).fetchone()
        return (TokenUse(BootFile(row["file"]), self._window(db, row), row["used_at"],
                         row["used_by"]) if row else None)

    def spend_named(self, mac: str, file: BootFile, user: str, now: float, *,
                    spend: bool = True) -> Spend:
        """Spend the current window's token for ``file``, which the client cannot name
        (PXELINUX and GRUB ask for their configs by fixed names)."""
        window = self.current_window(mac)
        token = None if window is None else window.tokens.get(file)
        if token is None:  # no window, or one opened before netboot knew ``file``
            return Spend(Verdict.UNKNOWN, window)
        return self.spend_token(token, mac, file, user, now, spend=spend)

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

    # -- servers ---------------------------------------------------------------

    def announce_server(self, record: ServerRecord) -> list[ServerRecord]:
        """Write this server's row (a start, or a heartbeat) and return the other servers'
        rows, read in the same transaction."""
        with self.transaction() as db:
            db.execute(_SERVER_UPSERT, _server_params(record))
            rows = db.execute("SELECT * FROM servers WHERE name <> ?", (record.name,)).fetchall()
        return [_server(r) for r in rows]

    def heartbeat(self, record: ServerRecord) -> None:
        """Refresh this server's row: one statement outside :meth:`transaction`, so on
        PostgreSQL it leaves the change mark alone and the watchers of clients and targets
        on every server do not re-read for it (SQLite's mark follows every commit)."""
        self._db.execute(_SERVER_UPSERT, _server_params(record))

    def servers(self) -> list[ServerRecord]:
        """Every server that ever served this inventory and was not forgotten, by name."""
        return [_server(r) for r in self._db.execute("SELECT * FROM servers ORDER BY name")]

    def forget_server(self, name: str) -> bool:
        """Remove a server's row (one taken out of service); False if there was none."""
        with self.transaction() as db:
            return db.execute("DELETE FROM servers WHERE name = ?", (name,)).rowcount > 0


_SERVER_UPSERT = (
    "INSERT INTO servers (name, address, range_start, range_end, portal, started, seen, "
    "stopped) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
    "address = excluded.address, range_start = excluded.range_start, "
    "range_end = excluded.range_end, portal = excluded.portal, started = excluded.started, "
    "seen = excluded.seen, stopped = excluded.stopped")


def _directory_moved(db: Database) -> None:
    """Inside a write that added or removed a client or changed one's DIRECTORY_COLUMNS."""
    db.execute("UPDATE directory_version SET version = version + 1")


def _prune_stage_log(db: Database, written: Iterable[tuple[str, Stage]]) -> None:
    """Keep each client's last :data:`KEPT_ROWS` stages; pruned when a boot starts (a DHCP
    stage), so the many stages of a boot storm's later steps cost no deletes."""
    starting = sorted({mac for mac, stage in written if stage is Stage.DHCP})
    db.executemany(
        "DELETE FROM stage_log WHERE mac = ? AND at < (SELECT at FROM stage_log WHERE mac = ? "
        "ORDER BY at DESC LIMIT 1 OFFSET ?)", [(mac, mac, KEPT_ROWS - 1) for mac in starting])


def _note_booted_image(db: Database, written: Iterable[tuple[str, Stage]]) -> None:
    """A client that reached its root booted the image version its record names then: the
    running version ``status`` shows beside the one it is set to (they differ after a
    reimage until the next boot)."""
    db.executemany("UPDATE clients SET booted_image = image WHERE mac = ?",
                   [(mac,) for mac in sorted({m for m, stage in written if stage is Stage.ROOT})])


def _server_params(record: ServerRecord) -> tuple[object, ...]:
    return (record.name, str(record.address), str(record.range_start), str(record.range_end),
            record.portal.value, record.started, record.seen, record.stopped)


def _server(row: Row) -> ServerRecord:
    return ServerRecord(row["name"], IPv4Address(row["address"]),
                        IPv4Address(row["range_start"]), IPv4Address(row["range_end"]),
                        PortalRole(row["portal"]), row["started"], row["seen"], row["stopped"])


InventoryFactory = Callable[[], Inventory]  # how a service opens its own connections


def open_inventory(config: Config) -> Inventory:
    """The inventory ``config`` names: inventory.url, or SQLite in storage.state_dir."""
    return Inventory(config.inventory.url or config.storage.database,
                     password_file=config.inventory.password_file)
