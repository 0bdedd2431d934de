"""Boot windows and tokens: the rule (pure) and the store that keeps them across restarts."""

from __future__ import annotations

import pytest

from netboot.inventory.store import Inventory, open_inventory
from netboot.inventory.windows import (
    BootFile,
    BootWindow,
    TokenUse,
    Verdict,
    judge,
    new_tokens,
)
from netboot.provisioning.clients import add_client

MAC, OTHER_MAC = "52:54:00:12:34:56", "52:54:00:12:34:57"
NOW = 1_800_000_000.0


def window(**changes) -> BootWindow:
    fields = dict(boot_id=1, mac=MAC, opened=NOW, expires=NOW + 120, ready=True, closed=None,
                  tokens=new_tokens())
    return BootWindow(**{**fields, **changes})


def use(file: BootFile = BootFile.SCRIPT, used_by: str | None = None, **changes) -> TokenUse:
    return TokenUse(file, window(**changes), NOW + 1 if used_by else None, used_by)


def test_a_fresh_token_in_a_ready_open_window_is_granted():
    assert judge(use(), MAC, BootFile.SCRIPT, NOW + 1).verdict is Verdict.GRANTED


def test_a_used_token_is_spent_and_names_its_first_user():
    spend = judge(use(used_by="198.18.0.10"), MAC, BootFile.SCRIPT, NOW + 2)
    assert (spend.verdict, spend.first_user) == (Verdict.SPENT, "198.18.0.10")


@pytest.mark.parametrize(("changes", "at"), [({"closed": NOW + 5}, NOW + 6), ({}, NOW + 121)])
def test_a_token_of_a_closed_or_timed_out_window_is_expired(changes, at):
    assert judge(use(**changes), MAC, BootFile.SCRIPT, at).verdict is Verdict.EXPIRED


def test_a_token_of_a_window_being_prepared_is_not_ready():
    assert judge(use(ready=False), MAC, BootFile.SCRIPT, NOW).verdict is Verdict.NOT_READY


@pytest.mark.parametrize(("token_use", "mac", "file"), [
    (None, MAC, BootFile.SCRIPT),
    (use(), OTHER_MAC, BootFile.SCRIPT),
    (use(BootFile.SCRIPT), MAC, BootFile.CLIENT_PART),
])
def test_a_token_of_another_client_or_file_is_unknown(token_use, mac, file):
    assert judge(token_use, mac, file, NOW).verdict is Verdict.UNKNOWN


def test_tokens_are_128_bits_and_one_per_file():
    tokens = new_tokens()
    assert set(tokens) == set(BootFile)
    assert len(set(tokens.values())) == len(BootFile)
    assert all(len(bytes.fromhex(t)) == 16 for t in tokens.values())


@pytest.fixture
def config(store_config):
    return store_config()


@pytest.fixture
def inventory(config):
    with open_inventory(config) as inv:
        add_client(config, inv, MAC)
        yield inv


def test_exchanges_of_one_boot_find_the_same_window(inventory: Inventory):
    first, new = inventory.open_window(MAC, NOW, 120, ready=True)
    again, again_new = inventory.open_window(MAC, NOW + 3, 120, ready=True)
    assert (new, again_new) == (True, False) and again == first


def test_after_a_spent_file_an_exchange_opens_a_new_window_and_closes_the_old(
        inventory: Inventory):
    first, _ = inventory.open_window(MAC, NOW, 120, ready=True)
    inventory.spend_token(first.tokens[BootFile.SCRIPT], MAC, BootFile.SCRIPT, "a", NOW + 1)
    second, new = inventory.open_window(MAC, NOW + 2, 120, ready=True)
    assert new and second.boot_id != first.boot_id
    stale = inventory.spend_token(first.tokens[BootFile.CLIENT_PART], MAC, BootFile.CLIENT_PART,
                                  "a", NOW + 3)
    assert stale.verdict is Verdict.EXPIRED


def test_a_window_and_its_spent_tokens_survive_reopening_the_inventory(config,
                                                                       inventory: Inventory):
    opened, _ = inventory.open_window(MAC, NOW, 120, ready=True)
    inventory.spend_token(opened.tokens[BootFile.SCRIPT], MAC, BootFile.SCRIPT, "a", NOW + 1)
    with open_inventory(config) as reopened:
        assert reopened.spend_token(opened.tokens[BootFile.SCRIPT], MAC, BootFile.SCRIPT, "b",
                                    NOW + 2).verdict is Verdict.SPENT
        assert reopened.spend_token(opened.tokens[BootFile.CLIENT_PART], MAC,
                                    BootFile.CLIENT_PART, "a", NOW + 2).verdict is Verdict.GRANTED


def test_windows_being_prepared_are_listed_until_ready(inventory: Inventory):
    opened, _ = inventory.open_window(MAC, NOW, 120, ready=False)
    assert [w.boot_id for w in inventory.unready_windows(NOW + 1)] == [opened.boot_id]
    inventory.window_ready(opened.boot_id)
    assert inventory.unready_windows(NOW + 1) == []


def test_a_window_waits_for_every_required_server(inventory: Inventory):
    opened, _ = inventory.open_window(MAC, NOW, 120, ready=False)
    assert not inventory.record_preparation(opened.boot_id, "a", {"a", "b"})
    assert inventory.window_preparers(opened.boot_id) == {"a"}
    assert [w.boot_id for w in inventory.unready_windows(NOW + 1)] == [opened.boot_id]
    assert inventory.record_preparation(opened.boot_id, "b", {"a", "b"})
    assert inventory.unready_windows(NOW + 1) == []


def test_a_window_is_ready_once_a_lost_server_is_no_longer_required(inventory: Inventory):
    opened, _ = inventory.open_window(MAC, NOW, 120, ready=False)
    inventory.record_preparation(opened.boot_id, "a", {"a", "b"})
    assert inventory.record_preparation(opened.boot_id, "a", {"a"})  # b died: asked again


def test_a_windows_secrets_are_rotated_once(inventory: Inventory):
    opened, _ = inventory.open_window(MAC, NOW, 120, ready=False)
    assert inventory.rotate_window_secrets(opened.boot_id, MAC, "firstSecret00001",
                                           "firstMutual00001")
    assert not inventory.rotate_window_secrets(opened.boot_id, MAC, "otherSecret00001",
                                               "otherMutual00001")
    assert inventory.get(MAC).chap_secret == "firstSecret00001"


def test_removing_a_client_removes_its_windows(inventory: Inventory):
    inventory.open_window(MAC, NOW, 120, ready=True)
    inventory.delete(MAC)
    assert inventory.current_window(MAC) is None
    assert inventory.query("SELECT count(*) FROM boot_tokens")[0][0] == 0


def test_a_window_being_prepared_is_judged_while_another_writer_holds_the_inventory(
        config, inventory: Inventory):
    """A storm's waiting requests ask again and again: asking takes no write lock."""
    opened, _ = inventory.open_window(MAC, NOW, 120, ready=False)
    with open_inventory(config) as other, other.transaction():
        verdict = inventory.spend_token(opened.tokens[BootFile.SCRIPT], MAC, BootFile.SCRIPT,
                                        "a", NOW + 1)
    assert verdict.verdict is Verdict.NOT_READY

