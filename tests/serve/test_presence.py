"""Each serve's row in the shared inventory: registered at start, refreshed, marked stopped,
and a start refused while another running server's dynamic range overlaps its own."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.configfile import parse_config
from netboot.errors import NetbootError
from netboot.inventory.servers import Liveness, PortalRole, ServerRecord
from netboot.inventory.store import open_inventory
from netboot.serve.presence import Presence


def server(tmp_path: Path, name: str, address: str, dhcp_range: str = "") -> Config:
    """A server ``name`` whose inventory is the one SQLite file all of the test's share."""
    text = (f"server:\n  name: {name}\n  address: {address}\n"
            f"dhcp:\n  subnet: 198.18.0.0/24\n{dhcp_range}"
            f"storage:\n  state_dir: {tmp_path / 'state'}\n"
            "target:\n  manage: false\n")
    return parse_config(text, str(tmp_path / f"{name}.yaml"))


def presence(config: Config, interval: float = 5.0) -> Presence:
    return Presence(config, partial(open_inventory, config), interval=interval)


def rows(config: Config) -> dict[str, ServerRecord]:
    with open_inventory(config) as inventory:
        return {s.name: s for s in inventory.servers()}


def test_a_started_serve_is_registered_as_running(tmp_path: Path) -> None:
    config = server(tmp_path, "a", "198.18.0.1")
    one = presence(config)
    one.start()
    try:
        row = rows(config)["a"]
        assert row.liveness(time.time()) is Liveness.RUNNING
        assert row.portal is PortalRole.NONE  # target.manage is off
        assert (str(row.range_start), str(row.range_end)) == ("198.18.0.192", "198.18.0.254")
    finally:
        one.stop()


def test_a_stopped_serve_is_marked_stopped(tmp_path: Path) -> None:
    config = server(tmp_path, "a", "198.18.0.1")
    one = presence(config)
    one.start()
    one.stop()
    assert rows(config)["a"].liveness(time.time()) is Liveness.STOPPED


def test_the_heartbeat_refreshes_the_row(tmp_path: Path) -> None:
    config = server(tmp_path, "a", "198.18.0.1")
    one = presence(config, interval=0.1)
    one.start()
    try:
        first = rows(config)["a"].seen
        time.sleep(0.5)
        assert rows(config)["a"].seen > first
    finally:
        one.stop()


def test_a_second_server_with_an_overlapping_range_is_refused(tmp_path: Path) -> None:
    a, b = server(tmp_path, "a", "198.18.0.1"), server(tmp_path, "b", "198.18.0.2")
    first = presence(a)
    first.start()
    try:
        with pytest.raises(NetbootError, match=r"overlaps that of server a \(198\.18\.0\.1: "
                                               r"198\.18\.0\.192-198\.18\.0\.254\)"):
            presence(b).start()
        assert rows(b)["b"].liveness(time.time()) is Liveness.STOPPED
    finally:
        first.stop()


def test_two_servers_with_split_ranges_both_run(tmp_path: Path) -> None:
    a = server(tmp_path, "a", "198.18.0.1",
               "  range_start: 198.18.0.192\n  range_end: 198.18.0.223\n")
    b = server(tmp_path, "b", "198.18.0.2",
               "  range_start: 198.18.0.224\n  range_end: 198.18.0.254\n")
    first, second = presence(a), presence(b)
    first.start()
    second.start()
    try:
        now = time.time()
        assert {n: r.liveness(now) for n, r in rows(a).items()} == {
            "a": Liveness.RUNNING, "b": Liveness.RUNNING}
    finally:
        second.stop()
        first.stop()


def test_a_server_that_stopped_leaves_its_range_free(tmp_path: Path) -> None:
    a, b = server(tmp_path, "a", "198.18.0.1"), server(tmp_path, "b", "198.18.0.2")
    first = presence(a)
    first.start()
    first.stop()
    second = presence(b)
    second.start()
    second.stop()
