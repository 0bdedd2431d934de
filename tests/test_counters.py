"""Counters carried between serve's processes as snapshot files."""

import os

from netboot.counters import (
    CounterPublisher,
    Kind,
    Sample,
    clear_snapshots,
    counted,
    decode,
    encode,
    merge,
    read_snapshots,
)

REQUESTS = Sample("dhcp_requests", Kind.COUNTER, "DHCP requests received", 3)
DROPPED = Sample("dhcp_dropped", Kind.COUNTER, "dropped", 2, (("reason", "malformed"),))


class Source:
    def __init__(self, *samples: Sample) -> None:
        self.values = list(samples)

    def samples(self) -> list[Sample]:
        return self.values


def test_a_snapshot_decodes_to_the_samples_encoded():
    assert decode(encode([REQUESTS, DROPPED])) == [REQUESTS, DROPPED]


def test_merge_adds_the_same_metric_of_several_processes():
    other = Sample("dhcp_requests", Kind.COUNTER, "DHCP requests received", 4)
    assert merge([[REQUESTS, DROPPED], [other]]) == [
        Sample("dhcp_requests", Kind.COUNTER, "DHCP requests received", 7), DROPPED]


def test_merge_keeps_label_sets_apart():
    late = Sample("dhcp_dropped", Kind.COUNTER, "dropped", 1, (("reason", "rate"),))
    assert len(merge([[DROPPED], [late]])) == 2


def test_publisher_writes_this_process_snapshot_and_rewrites_it_at_stop(tmp_path):
    source = Source(REQUESTS)
    publisher = CounterPublisher(tmp_path, [source])
    publisher.start()
    source.values = [Sample("dhcp_requests", Kind.COUNTER, "DHCP requests received", 9)]
    publisher.stop()
    assert (tmp_path / f"{os.getpid()}.json").exists()
    assert read_snapshots(tmp_path)[0].value == 9


def test_an_unreadable_snapshot_is_skipped(tmp_path):
    (tmp_path / "1.json").write_bytes(encode([REQUESTS]))
    (tmp_path / "2.json").write_text("{not json")
    assert read_snapshots(tmp_path) == [REQUESTS]


def test_clear_drops_an_earlier_runs_snapshots(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "1.json").write_bytes(encode([REQUESTS]))
    clear_snapshots(tmp_path / "metrics")
    assert read_snapshots(tmp_path / "metrics") == []


def test_only_services_that_count_are_published():
    source = Source(REQUESTS)
    assert counted([object(), source]) == [source]
