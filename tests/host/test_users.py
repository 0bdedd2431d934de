"""The network part's user: which directories it can pass, what is shared, how it is started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netboot.errors import NetbootError
from netboot.host.users import ServiceUser, blocking_directory, drop_to, service_user, share
from tests.conftest import needs_root
from tests.support.paths import make_reachable

NOBODY = ServiceUser("nobody", 65534, 65534)


def test_a_private_directory_on_the_way_blocks_another_user(tmp_path: Path):
    private = tmp_path / "private"
    (private / "state").mkdir(parents=True)
    make_reachable(tmp_path)
    private.chmod(0o700)
    assert blocking_directory(private / "state" / "inventory.sqlite3", NOBODY) == private


@needs_root
def test_a_directory_the_users_group_may_pass_does_not_block(tmp_path: Path):
    make_reachable(tmp_path)
    (tmp_path / "shared").mkdir(mode=0o710)
    os.chown(tmp_path / "shared", 0, NOBODY.gid)
    assert blocking_directory(tmp_path / "shared" / "file", NOBODY) is None


def test_a_path_not_made_yet_is_judged_by_what_exists(tmp_path: Path):
    make_reachable(tmp_path)
    assert blocking_directory(tmp_path / "later" / "file", NOBODY) is None


@needs_root
def test_sharing_gives_the_group_read_and_keeps_the_owner(tmp_path: Path):
    path = tmp_path / "vmlinuz"
    path.write_bytes(b"kernel")
    path.chmod(0o600)
    share(path, NOBODY)
    info = path.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (os.geteuid(), 65534, 0o640)


@needs_root
def test_sharing_for_writing_adds_group_write(tmp_path: Path):
    path = tmp_path / "inventory.sqlite3"
    path.write_bytes(b"")
    path.chmod(0o600)
    share(path, NOBODY, write=True)
    assert path.stat().st_mode & 0o777 == 0o660


def test_the_network_part_keeps_three_capabilities_no_groups_and_dies_with_serve():
    argv = drop_to(NOBODY, ["netboot", "serve"])
    caps = "-all,+net_bind_service,+net_raw,+net_admin"
    assert argv[:1] == ["setpriv"] and argv[-3:] == ["--", "netboot", "serve"]
    assert {"--reuid=65534", "--regid=65534", "--clear-groups", f"--ambient-caps={caps}",
            f"--bounding-set={caps}", "--no-new-privs", "--pdeathsig=TERM"} <= set(argv)


def test_a_missing_user_is_an_error_that_says_how_to_make_it():
    with pytest.raises(NetbootError, match="make setup"):
        service_user("no-such-user-here")
