"""Per-client boot progress: first sighting wins, plain lines off a terminal, the summary table."""

from __future__ import annotations

import io

from netboot.lab.markers import Stage
from netboot.lab.progress import Board, ClientProgress, status_line, summary_json, summary_table


def _client(name: str = "node-01", mac: str = "52:54:00:00:00:01") -> ClientProgress:
    return ClientProgress(name, mac)


def test_first_sighting_of_a_stage_counts():
    client = _client()
    assert client.observe(Stage.DHCP, 2.5)
    assert not client.observe(Stage.DHCP, 3.0)
    assert client.times[Stage.DHCP] == 2.5


def test_furthest_stage_is_current_even_if_seen_out_of_order():
    client = _client()
    client.observe(Stage.KERNEL, 5.0)
    client.observe(Stage.DHCP, 2.0)  # the inventory poll may report DHCP late
    assert client.stage is Stage.KERNEL


def test_failure_ends_the_boot_and_keeps_its_detail():
    client = _client()
    client.observe(Stage.FAILED, 9.0, "CHAP rejected")
    assert client.done and client.stage is Stage.FAILED
    assert client.result == "failed: CHAP rejected"


def test_plain_board_prints_one_line_per_new_stage():
    out = io.StringIO()
    board = Board([_client()], out, live=False)
    board.observe("node-01", Stage.DHCP, 2.51, "198.18.0.10")
    board.observe("node-01", Stage.DHCP, 2.6)
    assert out.getvalue() == "node-01 52:54:00:00:00:01 +2.5 s dhcp (198.18.0.10)\n"


def test_live_board_redraws_its_lines_in_place():
    out = io.StringIO()
    board = Board([_client(), _client("node-02", "52:54:00:00:00:02")], out, live=True)
    board.refresh({"node-01": 1.0, "node-02": 1.0})
    board.refresh({"node-01": 1.2, "node-02": 1.2})
    second = out.getvalue().split("\x1b[2F", 1)[1]
    assert second.count("\x1b[2K") == 2 and "1.2 s" in second


def test_status_line_shows_stage_and_elapsed():
    client = _client()
    client.observe(Stage.KERNEL, 8.0)
    assert status_line(client, 12.34) == "node-01      52:54:00:00:00:01  kernel       12.3 s"


def test_summary_table_gives_seconds_per_milestone():
    done, failed = _client(), _client("node-02", "52:54:00:00:00:02")
    for stage, at in [(Stage.DHCP, 2.5), (Stage.KERNEL, 6.0), (Stage.LOGIN, 9.25),
                      (Stage.ROOT, 10.0)]:
        done.observe(stage, at)
    failed.observe(Stage.DHCP, 2.7)
    failed.observe(Stage.FAILED, 8.0, "CHAP rejected")
    assert summary_table([done, failed]) == (
        "CLIENT   MAC                DHCP ACK  KERNEL  ISCSI LOGIN  ROOT  RESULT\n"
        "node-01  52:54:00:00:00:01  2.5       6.0     9.2          10.0  ok\n"
        "node-02  52:54:00:00:00:02  2.7       -       -            -     failed: CHAP rejected"
    )


def test_summary_json_has_every_stage_seen():
    client = _client()
    client.observe(Stage.DHCP, 2.5)
    client.ended = "timed out after 60 s"
    assert summary_json([client]) == [{"client": "node-01", "mac": "52:54:00:00:00:01",
                                       "result": "timed out after 60 s",
                                       "seconds": {"dhcp": 2.5}}]
