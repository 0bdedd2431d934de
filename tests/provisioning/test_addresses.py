"""Choosing a client's fixed address from what is taken (pure)."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

import pytest

from netboot.errors import Conflict
from netboot.provisioning.addresses import pick_address

SUBNET = IPv4Network("198.18.0.0/24")
DYNAMIC = (IPv4Address("198.18.0.128"), IPv4Address("198.18.0.254"))


def numbers(*texts: str) -> set[int]:
    return {int(IPv4Address(t)) for t in texts}


def test_the_lowest_host_address_that_is_free_is_picked() -> None:
    assert pick_address(SUBNET, set(), DYNAMIC, set()) == IPv4Address("198.18.0.1")


def test_reserved_and_taken_addresses_are_skipped() -> None:
    picked = pick_address(SUBNET, {IPv4Address("198.18.0.1")}, DYNAMIC,
                          numbers("198.18.0.2", "198.18.0.3"))
    assert picked == IPv4Address("198.18.0.4")


def test_a_gap_left_by_a_removed_client_is_filled_first() -> None:
    picked = pick_address(SUBNET, set(), DYNAMIC, numbers("198.18.0.1", "198.18.0.3"))
    assert picked == IPv4Address("198.18.0.2")


def test_the_dynamic_range_is_never_picked() -> None:
    below = numbers(*(f"198.18.0.{n}" for n in range(1, 128)))
    with pytest.raises(Conflict, match=re.escape(
            "no free address left in 198.18.0.0/24 outside the dynamic range "
            "198.18.0.128-198.18.0.254")):
        pick_address(SUBNET, set(), DYNAMIC, below)


def test_a_network_or_broadcast_address_is_never_picked() -> None:
    subnet = IPv4Network("198.18.0.0/30")
    nowhere = (IPv4Address("198.19.0.1"), IPv4Address("198.19.0.1"))
    assert pick_address(subnet, set(), nowhere, numbers("198.18.0.1")) == IPv4Address(
        "198.18.0.2")
    with pytest.raises(Conflict):
        pick_address(subnet, set(), nowhere, numbers("198.18.0.1", "198.18.0.2"))
