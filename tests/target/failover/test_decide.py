"""The portal's decisions: VRRP state and whether this server holds the portal in, actions out."""

from __future__ import annotations

import pytest

from netboot.target.failover.decide import Action, VrrpState, decide, holds_after


def test_becoming_master_fences_the_peer_before_taking_the_address() -> None:
    assert decide(False, VrrpState.MASTER) == (Action.FENCE_PEER, Action.TAKE_ADDRESS)


def test_master_again_while_holding_changes_nothing() -> None:
    assert decide(True, VrrpState.MASTER) == ()


@pytest.mark.parametrize("state", [VrrpState.BACKUP, VrrpState.FAULT, VrrpState.STOP])
def test_losing_the_portal_drops_the_address_and_stops_the_fenced_target(state) -> None:
    assert decide(True, state) == (Action.DROP_ADDRESS, Action.STOP_TARGET)


@pytest.mark.parametrize("state", [VrrpState.BACKUP, VrrpState.FAULT, VrrpState.STOP])
def test_a_standby_that_stays_standby_does_nothing(state) -> None:
    assert decide(False, state) == ()


def test_holding_follows_the_address() -> None:
    assert holds_after(decide(False, VrrpState.MASTER), False)
    assert not holds_after(decide(True, VrrpState.FAULT), True)
    assert holds_after((), True) and not holds_after((), False)


def test_a_fenced_server_made_master_takes_nothing() -> None:
    assert decide(False, VrrpState.MASTER, fenced=True) == ()
