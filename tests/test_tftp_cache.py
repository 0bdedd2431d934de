"""The TFTP loop's in-memory copies of boot files."""

from __future__ import annotations

import os
from pathlib import Path

from netboot.tftp.cache import ContentCache
from netboot.tftp.transfer import FileSource


def opened(path: Path) -> FileSource:
    return FileSource(os.open(path, os.O_RDONLY), path.stat().st_size)


def load(cache: ContentCache, path: Path):
    source = opened(path)
    try:
        return cache.load(source)
    finally:
        os.close(source.fd)


def test_the_same_file_is_read_once_and_shared(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"abc")
    cache = ContentCache()
    first = load(cache, tmp_path / "f")
    assert first is load(cache, tmp_path / "f")
    assert first.data == b"abc"


def test_a_rewritten_file_is_read_again(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    cache = ContentCache()
    load(cache, path)
    path.write_bytes(b"new!")
    assert load(cache, path).data == b"new!"


def test_the_least_recently_used_file_goes_when_the_budget_is_full(tmp_path: Path):
    for name in "abc":
        (tmp_path / name).write_bytes(name.encode() * 10)
    cache = ContentCache(budget=40)
    a = load(cache, tmp_path / "a")
    load(cache, tmp_path / "b")
    load(cache, tmp_path / "c")
    (tmp_path / "d").write_bytes(b"d" * 10)
    load(cache, tmp_path / "d")  # 40 bytes: fits, but "a" was used least recently
    (tmp_path / "e").write_bytes(b"e" * 10)
    load(cache, tmp_path / "e")
    assert cache.used <= 40
    assert load(cache, tmp_path / "a") is not a


def test_a_file_over_a_quarter_of_the_budget_is_left_on_disk(tmp_path: Path):
    (tmp_path / "big").write_bytes(bytes(11))
    assert load(ContentCache(budget=40), tmp_path / "big") is None
