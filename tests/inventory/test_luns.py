"""Whose target a LUN argument names: a client's MAC, or else a SAN host's name."""

import pytest

from netboot.errors import ValidationError
from netboot.inventory.luns import ROOT_LUN, LunOwner, OwnerKind


def test_a_mac_in_any_spelling_is_a_client():
    assert LunOwner.parse("5254.0012.3456") == LunOwner(OwnerKind.CLIENT, "52:54:00:12:34:56")


def test_a_text_spelled_as_a_multicast_mac_is_refused_as_a_mac():
    with pytest.raises(ValidationError, match="multicast MAC address"):
        LunOwner.parse("01:00:5e:00:00:01")


def test_any_other_text_is_a_host_name_lower_cased():
    assert LunOwner.parse("DB1.example") == LunOwner(OwnerKind.HOST, "db1.example")


def test_a_text_that_is_neither_is_refused_naming_it():
    with pytest.raises(ValidationError, match="'db_1' is neither a client's MAC address nor "
                                              "a SAN host's name"):
        LunOwner.parse("db_1")


def test_a_clients_first_added_lun_follows_its_root():
    assert LunOwner(OwnerKind.CLIENT, "52:54:00:12:34:56").first_lun == ROOT_LUN + 1


def test_a_hosts_first_lun_is_1():
    assert LunOwner(OwnerKind.HOST, "db1").first_lun == 1
