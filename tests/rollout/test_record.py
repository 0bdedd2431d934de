"""The last roll-out's record: written whole, read back from any server of a shared
inventory, each client's move kept in order."""

import pytest

from netboot.errors import NotFound, ValidationError
from netboot.inventory.store import open_inventory
from netboot.rollout.record import Move, Rollout, load, save
from tests.support.postgres import inventory_yaml


@pytest.fixture(params=["sqlite", "postgresql"])
def inventory(request, make_config):
    with open_inventory(make_config(inventory_yaml(request, request.param))) as opened:
        yield opened


def test_a_saved_rollout_reads_back_equal(inventory):
    rollout = Rollout("os@2", 1000.0, (Move("52:54:00:00:00:01", "web-1", "os@1", "up"),),
                      stopped="batch 2: web-2 timed out after stage login")
    save(inventory, rollout)
    assert load(inventory) == rollout


def test_a_second_save_replaces_the_record(inventory):
    save(inventory, Rollout("os@2", 1000.0))
    save(inventory, Rollout("os@3", 2000.0))
    assert load(inventory).version == "os@3"


def test_a_clients_move_is_updated_in_place_and_new_ones_go_last():
    rollout = Rollout("os@2", 1000.0).with_move(Move("aa", "a", "os@1")).with_move(
        Move("bb", "b", "os@1")).with_move(Move("aa", "a", "os@1", "up"))
    assert [(m.mac, m.result) for m in rollout.moves] == [("aa", "up"), ("bb", "pending")]


def test_without_a_rollout_there_is_nothing_to_undo(inventory):
    with pytest.raises(NotFound, match="nothing to undo"):
        load(inventory)


def test_a_damaged_record_is_named(inventory):
    with inventory.transaction() as db:
        db.execute("INSERT INTO last_rollout (id, record) VALUES (1, '{')")
    with pytest.raises(ValidationError, match="last roll-out is not a roll-out record"):
        load(inventory)
