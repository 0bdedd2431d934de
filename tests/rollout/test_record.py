"""The last roll-out's record: written whole, read back, each client's move kept in order."""

import pytest

from netboot.errors import NotFound, ValidationError
from netboot.rollout.record import Move, Rollout, load, path, save


@pytest.fixture
def config(make_config):
    return make_config()


def test_a_saved_rollout_reads_back_equal(config):
    rollout = Rollout("os@2", 1000.0, (Move("52:54:00:00:00:01", "web-1", "os@1", "up"),),
                      stopped="batch 2: web-2 timed out after stage login")
    save(config, rollout)
    assert load(config) == rollout


def test_a_clients_move_is_updated_in_place_and_new_ones_go_last(config):
    rollout = Rollout("os@2", 1000.0).with_move(Move("aa", "a", "os@1")).with_move(
        Move("bb", "b", "os@1")).with_move(Move("aa", "a", "os@1", "up"))
    assert [(m.mac, m.result) for m in rollout.moves] == [("aa", "up"), ("bb", "pending")]


def test_without_a_rollout_there_is_nothing_to_undo(config):
    with pytest.raises(NotFound, match="nothing to undo"):
        load(config)


def test_a_damaged_record_is_named(config):
    path(config).parent.mkdir(parents=True)
    path(config).write_text("{")
    with pytest.raises(ValidationError, match=r"last\.json: not a roll-out record"):
        load(config)
