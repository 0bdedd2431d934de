import pytest

from netboot.errors import ValidationError
from netboot.names import mac_bytes, mac_from_bytes, normalize_mac


@pytest.mark.parametrize("text", [
    "aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aabbccddeeff",
    " AA:bb:CC:dd:EE:ff ",
])
def test_accepted_spellings_normalise_to_colon_form(text):
    assert normalize_mac(text) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize("text", [
    "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb-cc:dd:ee:ff", "gg:bb:cc:dd:ee:ff",
    "aabb.ccdd.eef", "", "not a mac",
])
def test_malformed_mac_is_refused(text):
    with pytest.raises(ValidationError, match="not a MAC address"):
        normalize_mac(text)


def test_multicast_mac_is_refused():
    with pytest.raises(ValidationError, match="multicast"):
        normalize_mac("01:00:5e:00:00:01")


def test_broadcast_mac_is_refused():
    with pytest.raises(ValidationError, match="broadcast"):
        normalize_mac("ff:ff:ff:ff:ff:ff")


def test_all_zero_mac_is_refused():
    with pytest.raises(ValidationError, match="all-zero"):
        normalize_mac("00:00:00:00:00:00")


def test_mac_bytes_round_trip():
    assert mac_from_bytes(mac_bytes("52:54:00:12:34:56") + b"\0" * 10) == "52:54:00:12:34:56"
