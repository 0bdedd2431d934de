"""The servers sharing an inventory: the rules on their rows (pure), and the rows kept by both
stores (tests/inventory/conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from netboot.inventory.servers import (
    ALIVE_WITHIN,
    Liveness,
    PortalRole,
    ServerRecord,
    portal_holder,
    preparers,
    range_clashes,
)
from netboot.inventory.store import open_inventory

NOW = 1_800_000_000.0
A = ServerRecord("a", IPv4Address("198.18.0.1"), IPv4Address("198.18.0.192"),
                 IPv4Address("198.18.0.223"), PortalRole.HOLDER, NOW - 60, NOW)
B = ServerRecord("b", IPv4Address("198.18.0.2"), IPv4Address("198.18.0.224"),
                 IPv4Address("198.18.0.254"), PortalRole.STANDBY, NOW - 60, NOW)


def test_a_row_refreshed_lately_is_running() -> None:
    assert A.liveness(NOW + ALIVE_WITHIN) is Liveness.RUNNING


def test_a_row_without_heartbeat_is_lost() -> None:
    assert A.liveness(NOW + ALIVE_WITHIN + 1) is Liveness.LOST


def test_a_row_marked_stopped_is_stopped_even_when_fresh() -> None:
    assert replace(A, stopped=NOW).liveness(NOW) is Liveness.STOPPED


def test_split_ranges_do_not_clash() -> None:
    assert range_clashes(A, [B], NOW) == []


def test_a_range_sharing_one_address_clashes() -> None:
    other = replace(B, range_start=A.range_end)
    assert range_clashes(A, [other], NOW) == [other]


def test_a_lost_or_stopped_server_does_not_clash() -> None:
    other = replace(B, range_start=A.range_start)
    assert range_clashes(A, [replace(other, seen=NOW - ALIVE_WITHIN - 1)], NOW) == []
    assert range_clashes(A, [replace(other, stopped=NOW)], NOW) == []


def test_a_server_does_not_clash_with_its_own_earlier_row() -> None:
    assert range_clashes(A, [replace(A, started=NOW - 3600)], NOW) == []


def test_the_portal_holder_is_the_running_server_holding_it() -> None:
    assert portal_holder([B, A], NOW) == A
    assert portal_holder([B, replace(A, seen=NOW - ALIVE_WITHIN - 1)], NOW) is None


def test_windows_are_prepared_by_me_and_each_running_server_with_a_tgtd() -> None:
    none = replace(B, name="c", portal=PortalRole.NONE)
    fenced = replace(B, name="d", portal=PortalRole.FENCED)
    lost = replace(B, name="e", seen=NOW - ALIVE_WITHIN - 1)
    assert preparers([A, B, none, fenced, lost], "a", NOW) == {"a", "b"}
    assert preparers([], "solo", NOW) == {"solo"}


@pytest.fixture
def inventory(store_config):
    with open_inventory(store_config()) as inv:
        yield inv


def test_announce_returns_the_other_servers_rows(inventory) -> None:
    assert inventory.announce_server(A) == []
    assert inventory.announce_server(B) == [A]
    assert inventory.servers() == [A, B]


def test_a_heartbeat_replaces_the_servers_row(inventory) -> None:
    inventory.announce_server(A)
    later = replace(A, seen=NOW + 5, portal=PortalRole.STANDBY)
    inventory.announce_server(later)
    assert inventory.servers() == [later]


def test_a_stop_is_kept_in_the_row(inventory) -> None:
    inventory.announce_server(replace(A, stopped=NOW + 1))
    assert inventory.servers()[0].stopped == NOW + 1


def test_a_forgotten_server_is_gone(inventory) -> None:
    inventory.announce_server(A)
    assert inventory.forget_server("a") and not inventory.forget_server("a")
    assert inventory.servers() == []


def test_a_heartbeat_updates_the_row_in_place(inventory) -> None:
    inventory.announce_server(A)
    later = replace(A, seen=NOW + 5, portal=PortalRole.STANDBY)
    inventory.heartbeat(later)
    assert inventory.servers() == [later]


def test_a_heartbeat_leaves_postgresqls_change_mark_alone(store, inventory) -> None:
    if store == "sqlite":
        pytest.skip("SQLite's change mark follows every commit")
    inventory.announce_server(A)
    mark = inventory.change_mark()
    inventory.heartbeat(replace(A, seen=NOW + 5))
    assert inventory.change_mark() == mark
