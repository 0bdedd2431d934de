"""What only the PostgreSQL store has: its SQL translation, its password file, its schema
kept in step with SQLite's, and its errors."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from netboot.errors import NetbootError
from netboot.inventory.clients import UnknownNote
from netboot.inventory.migrations import POSTGRESQL, SQLITE
from netboot.inventory.postgres import read_password, translate
from netboot.inventory.store import Inventory


def test_placeholders_become_psycopgs_outside_quotes():
    assert translate("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '5%'") == \
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '5%'"


def test_a_percent_sign_outside_quotes_is_escaped():
    assert translate("SELECT 7 % ?") == "SELECT 7 %% %s"


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400])
def test_a_password_file_for_its_owner_and_group_is_read(tmp_path, mode):
    path = tmp_path / "password"
    path.write_text("s3cret\n")
    path.chmod(mode)
    assert read_password(path) == "s3cret"


@pytest.mark.parametrize("mode", [0o604, 0o660, 0o644])
def test_a_password_file_others_may_read_or_change_is_refused(tmp_path, mode):
    path = tmp_path / "password"
    path.write_text("s3cret\n")
    path.chmod(mode)
    with pytest.raises(NetbootError, match=f"mode {mode:04o}") as err:
        read_password(path)
    assert "s3cret" not in str(err.value)


def test_an_empty_password_file_is_refused(tmp_path):
    path = tmp_path / "password"
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(NetbootError, match="empty"):
        read_password(path)


def test_both_dialects_have_the_same_numbered_steps():
    assert len(POSTGRESQL) == len(SQLITE)


def test_both_dialects_make_the_same_tables_and_columns(postgres_server, postgres_url,
                                                      tmp_path):
    Inventory(tmp_path / "inventory.sqlite3").close()
    Inventory(postgres_url, password_file=postgres_server.password_file).close()
    raw = sqlite3.connect(tmp_path / "inventory.sqlite3")
    lite = {(table, column) for (table,) in raw.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        for (_, column, *_) in raw.execute(f"PRAGMA table_info({table})")}
    raw.close()
    with Inventory(postgres_url, password_file=postgres_server.password_file) as inv:
        pg = {(r[0], r[1]) for r in inv.query(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'inventory_state'")}
    assert pg == lite


def test_a_wrong_password_is_a_clear_error_without_it(postgres_url, tmp_path):
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    with pytest.raises(NetbootError, match="cannot open the PostgreSQL inventory") as err:
        Inventory(postgres_url, password_file=wrong)
    assert "not-the-password" not in str(err.value)


def test_an_inventory_whose_session_the_server_ended_connects_again(postgres_server,
                                                                    postgres_url):
    """A restarted server (or one that ended the session) costs the statement that found
    out, not every later one: serve's connections live as long as serve."""
    with Inventory(postgres_url, password_file=postgres_server.password_file) as inv:
        pid = inv.query("SELECT pg_backend_pid()")[0][0]
        postgres_server.admin(f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(psycopg.OperationalError):
            inv.clients()
        inv.note_unknowns([UnknownNote("52:54:00:00:00:09", 1.0)])
        assert [m.mac for m in inv.unknown_machines()] == ["52:54:00:00:00:09"]
