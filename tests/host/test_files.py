"""Files on the host: atomic writes and the sweeping of temporary names left by dead processes."""

import os
import stat
from pathlib import Path

import pytest

from netboot.host.files import (
    atomic_write,
    create_sparse,
    private_file,
    remove_stale_temps,
    temp_path,
)
from tests.support.processes import dead_pid


def test_atomic_write_replaces_the_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_atomic_write_gives_the_mode_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    old = os.umask(0o077)
    try:
        atomic_write(path, b"x", mode=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_atomic_write_keeps_the_old_content_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "text, not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_dead_process_temp_files_and_directories_are_removed(tmp_path: Path) -> None:
    pid = dead_pid()
    (tmp_path / f".a.img.tmp-{pid}").write_bytes(b"half")
    (tmp_path / f".work.tmp-{pid}").mkdir()
    (tmp_path / f".work.tmp-{pid}" / "tree").mkdir()
    (tmp_path / f".base.tar.zst.tmp-{pid}.tar.zst").write_bytes(b"half")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        [f".a.img.tmp-{pid}", f".work.tmp-{pid}", f".base.tar.zst.tmp-{pid}.tar.zst"])
    assert list(tmp_path.iterdir()) == []


def test_only_the_temps_of_the_names_given_are_removed(tmp_path: Path) -> None:
    pid = dead_pid()
    (tmp_path / f".state.json.tmp-{pid}").write_bytes(b"half")
    (tmp_path / f".notes.tmp-{pid}").write_bytes(b"a user's")
    removed = remove_stale_temps(tmp_path, of=("state.json",))
    assert [p.name for p in removed] == [f".state.json.tmp-{pid}"]
    assert [p.name for p in tmp_path.iterdir()] == [f".notes.tmp-{pid}"]


def test_a_live_process_temp_file_is_kept(tmp_path: Path) -> None:
    mine = temp_path(tmp_path / "a.img")
    mine.write_bytes(b"being written")
    assert remove_stale_temps(tmp_path) == []
    assert mine.exists()


def test_files_that_only_look_like_temps_are_kept(tmp_path: Path) -> None:
    for name in ("a.img.tmp-1", ".a.img.tmp-x", ".a.img.tmp-"):
        (tmp_path / name).write_bytes(b"")
    remove_stale_temps(tmp_path)
    assert len(list(tmp_path.iterdir())) == 3


def test_temp_path_is_hidden_beside_the_final_name_with_this_pid(tmp_path: Path) -> None:
    assert temp_path(tmp_path / "a.img") == tmp_path / f".a.img.tmp-{os.getpid()}"
    assert temp_path(tmp_path / "b.tar.zst", ".tar.zst").name.endswith(".tar.zst")


def test_atomic_write_removes_the_temp_file_a_killed_writer_left(tmp_path: Path) -> None:
    left = tmp_path / f".state.json.tmp-{dead_pid()}"
    left.write_bytes(b"half")
    atomic_write(tmp_path / "state.json", b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_create_sparse_makes_a_file_of_the_size_with_no_blocks(tmp_path: Path) -> None:
    path = tmp_path / "lun.img"
    create_sparse(path, 1 << 30)
    assert path.stat().st_size == 1 << 30
    assert path.stat().st_blocks == 0


def test_a_private_file_is_0600_in_a_private_directory_and_gone_after():
    with private_file("s3cret-pw", "netboot-test-") as path:
        assert path.read_text() == "s3cret-pw"
        assert path.parent.name.startswith("netboot-test-")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.parent.stat().st_uid == os.geteuid()
    assert not path.exists() and not path.parent.exists()
