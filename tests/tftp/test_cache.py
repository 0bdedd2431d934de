"""The TFTP loop's in-memory copies of boot files."""

from __future__ import annotations

import os
from pathlib import Path

from netboot.boot.content import BytesSource, FileSource
from netboot.tftp.cache import MAX_BLOCK_SIZES, ContentCache
from netboot.tftp.packets import data_header


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


def test_datagrams_are_built_once_per_block_size_and_shared(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"0123456789")
    cache = ContentCache()
    source = load(cache, tmp_path / "f")
    first = cache.datagrams(source, 4)
    assert first == (data_header(1) + b"0123", data_header(2) + b"4567",
                     data_header(3) + b"89")
    assert cache.datagrams(load(cache, tmp_path / "f"), 4) is first


def test_datagrams_count_against_the_budget(tmp_path: Path):
    (tmp_path / "f").write_bytes(bytes(1000))
    cache = ContentCache(budget=100_000)
    source = load(cache, tmp_path / "f")
    before = cache.used
    cache.datagrams(source, 100)
    assert cache.used > before + 1000


def test_datagrams_past_the_budget_are_not_built(tmp_path: Path):
    (tmp_path / "f").write_bytes(bytes(10))
    cache = ContentCache(budget=45)
    assert cache.datagrams(load(cache, tmp_path / "f"), 1) is None
    assert cache.used == 10


def test_datagrams_are_kept_for_a_few_block_sizes_only(tmp_path: Path):
    (tmp_path / "f").write_bytes(bytes(100))
    cache = ContentCache()
    source = load(cache, tmp_path / "f")
    for blksize in range(8, 8 + MAX_BLOCK_SIZES):
        assert cache.datagrams(source, blksize) is not None
    assert cache.datagrams(source, 64) is None


def test_no_datagrams_for_a_source_the_cache_does_not_hold():
    assert ContentCache().datagrams(BytesSource(b"rendered per client"), 512) is None
