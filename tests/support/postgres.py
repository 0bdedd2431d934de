"""Debian's PostgreSQL 15 for tests of the PostgreSQL inventory: one server per session,
a fresh database per test.

The server runs as an unprivileged user (PostgreSQL refuses root: the
``netboot`` user of ``make setup``, else ``nobody``) from a private directory,
listening on a Unix socket there only (no TCP), and is stopped by its PID at
the session's end. Its one account has a password (SCRAM), which tests pass
the way netboot does: ``inventory.password_file``. fsync is off: tests kill
clients, never the server, and a committed transaction outlives its client
either way.

Registered as a plugin by tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

BIN = Path("/usr/lib/postgresql/15/bin")
ACCOUNT = "netboot"  # the PostgreSQL role tests connect as
START_TIMEOUT = 30.0


def missing() -> str | None:
    """Why the server cannot be started here, or None."""
    if os.geteuid() != 0:
        return "needs root: PostgreSQL runs as another user, which only root can start"
    if not (BIN / "postgres").exists():
        return ("PostgreSQL 15 is not installed (Debian package postgresql-15; "
                "`make setup` installs it)")
    return None


def _server_user() -> pwd.struct_passwd:
    for name in ("netboot", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("neither a netboot nor a nobody user to run PostgreSQL as")


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its socket directory and the password file of its account."""

    socket_dir: Path
    password_file: Path

    def url(self, database: str) -> str:
        return f"postgresql:///{database}?host={self.socket_dir}&user={ACCOUNT}"

    def admin(self, sql: str) -> None:
        """Run ``sql`` in the maintenance database (CREATE or DROP DATABASE)."""
        with psycopg.connect(self.url("postgres"), autocommit=True,
                             password=self.password_file.read_text().strip()) as db:
            db.execute(sql)

    def new_database(self) -> str:
        """The name of a new, empty database (drop it with :meth:`drop_database`)."""
        name = f"test_{secrets.token_hex(6)}"
        self.admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    user = _server_user()
    top = Path(tempfile.mkdtemp(prefix="netboot-pg-"))  # root's, 0700
    data, sockets = top / "data", top / "run"
    password_file = top / "password"
    password_file.write_text(secrets.token_hex(16) + "\n")
    password_file.chmod(0o600)
    server_side = top / "initdb-password"  # the server's user reads it once, at initdb
    shutil.copy(password_file, server_side)
    for path in (data, sockets):
        path.mkdir(mode=0o700)
    for path in (top, data, sockets, server_side):
        os.chown(path, user.pw_uid, user.pw_gid)
    as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": top}
    subprocess.run([BIN / "initdb", "-D", data, "-U", ACCOUNT, f"--pwfile={server_side}",
                    "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
                   check=True, capture_output=True, **as_user)
    server_side.unlink()
    log = (top / "postgres.log").open("w")
    proc = subprocess.Popen(
        [BIN / "postgres", "-D", data, "-k", sockets, "-h", "", "-c", "fsync=off",
         "-c", "max_connections=200"],
        stdout=log, stderr=subprocess.STDOUT, **as_user)
    try:
        server = PostgresServer(sockets, password_file)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                server.admin("SELECT 1")
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start: "
                                       f"{(top / 'postgres.log').read_text()}") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown: ends every session
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(top)


def inventory_yaml(request: pytest.FixtureRequest, store: str) -> str:
    """The config's ``inventory`` section for ``store`` ("sqlite": none, the default; or
    "postgresql": a new database of the session's server, with its password file)."""
    if store == "sqlite":
        return ""
    server = request.getfixturevalue("postgres_server")
    return (f'inventory:\n  url: "{request.getfixturevalue("postgres_url")}"\n'
            f"  password_file: {server.password_file}\n")


@pytest.fixture
def inventory_store(request: pytest.FixtureRequest) -> str:
    """The store of a test's inventory where fixtures build its config (tgtfixtures'
    ``target_config``): SQLite, unless the test parametrizes this fixture (indirect)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database of the session's server, dropped after the test."""
    name = postgres_server.new_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
