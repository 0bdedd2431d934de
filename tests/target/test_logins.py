"""Which target logins become a client's ``login`` stage: sessions seen round by round, no I/O."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from netboot.inventory.clients import Client
from netboot.target.logins import new_logins, sessions
from netboot.target.model import Login
from netboot.target.tgtshow import parse_logins

DATA = Path(__file__).parent / "data"
AUTH = "iqn.2026-11.org.example"
ALPHA = Client(mac="52:54:00:00:00:a1", hostname="alpha", ip=IPv4Address("198.18.0.11"),
               image="builtin", lun_path="/luns/alpha.img", lun_size=1 << 26,
               initiator_iqn=f"{AUTH}:initiator:alpha", target_iqn=f"{AUTH}:target:alpha",
               chap_user="alpha", chap_secret="alphaSecret00001",
               mutual_secret="alphaMutual00001", provisioned=True, last_stage="loader")
BETA = replace(ALPHA, mac="52:54:00:00:00:b2", hostname="beta",
               initiator_iqn=f"{AUTH}:initiator:beta", target_iqn=f"{AUTH}:target:beta")
ALPHA_SESSION = (ALPHA.target_iqn, ALPHA.initiator_iqn)


def captured(name: str) -> dict[str, tuple[Login, ...]]:
    """Real ``tgtadm --op show --mode target`` output: alpha and beta, beta idle."""
    return parse_logins((DATA / name).read_text())


LOGGED_IN = captured("show-target-logins.txt")  # two sessions of alpha's initiator
IDLE = captured("show-target-idle.txt")


def test_sessions_are_the_target_initiator_pairs_logged_in() -> None:
    assert sessions(LOGGED_IN) == {ALPHA_SESSION}
    assert sessions(IDLE) == frozenset()


def test_a_session_that_appears_records_login_with_its_address() -> None:
    assert new_logins(frozenset(), LOGGED_IN, [ALPHA, BETA]) == [
        (ALPHA, Login(ALPHA.initiator_iqn, "127.0.0.1"))]


def test_a_session_seen_in_the_previous_round_records_nothing() -> None:
    assert new_logins(frozenset({ALPHA_SESSION}), LOGGED_IN, [ALPHA, BETA]) == []


def test_no_session_records_nothing() -> None:
    assert new_logins(frozenset({ALPHA_SESSION}), IDLE, [ALPHA, BETA]) == []


def test_a_session_back_after_it_went_away_records_login_again() -> None:
    gone = sessions(IDLE)
    assert [c.mac for c, _ in new_logins(gone, LOGGED_IN, [ALPHA])] == [ALPHA.mac]


def test_a_client_never_staged_records_login() -> None:
    fresh = replace(ALPHA, last_stage=None)
    assert [c.mac for c, _ in new_logins(frozenset(), LOGGED_IN, [fresh])] == [ALPHA.mac]


def test_a_client_already_at_login_or_later_keeps_its_stage() -> None:
    for stage in ("login", "root", "failed"):
        assert new_logins(frozenset(), LOGGED_IN, [replace(ALPHA, last_stage=stage)]) == []


def test_another_initiator_on_a_clients_target_is_not_that_client() -> None:
    stranger = replace(ALPHA, initiator_iqn=f"{AUTH}:initiator:someone-else")
    assert new_logins(frozenset(), LOGGED_IN, [stranger]) == []


def test_a_clients_initiator_on_another_target_is_not_its_login() -> None:
    elsewhere = replace(ALPHA, target_iqn=f"{AUTH}:target:beta")
    assert new_logins(frozenset(), LOGGED_IN, [elsewhere]) == []
