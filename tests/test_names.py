import pytest

from netboot.errors import ValidationError
from netboot.names import (
    hostname_for_mac,
    initiator_iqn,
    looks_like_mac,
    validate_host_name,
    validate_hostname,
    validate_iqn,
)


@pytest.mark.parametrize("name", ["web1", "node-01", "a", "rack1.example.org", "x" * 63])
def test_valid_hostnames_are_accepted(name):
    assert validate_hostname(name) == name


def test_hostname_is_lower_cased():
    assert validate_hostname("Web1") == "web1"


@pytest.mark.parametrize("name", ["-web", "web-", "we_b", "web..x", "x" * 64, "", "a b"])
def test_invalid_hostnames_are_refused(name):
    with pytest.raises(ValidationError):
        validate_hostname(name)


def test_default_hostname_derives_from_mac():
    assert hostname_for_mac("52:54:00:12:34:56") == "node-525400123456"
    assert validate_hostname(hostname_for_mac("52:54:00:12:34:56"))


@pytest.mark.parametrize("iqn", [
    "iqn.2026-11.org.example:target:web1", "iqn.1992-01.com.example:storage.disk2.sys1.xyz",
])
def test_valid_iqns_are_accepted(iqn):
    assert validate_iqn(iqn) == iqn


@pytest.mark.parametrize("iqn", [
    "iqn.2026-13.org.example:x",  # no month 13
    "iqn.26-11.org.example:x",  # year must have 4 digits
    "IQN.2026-11.org.example:x",  # upper case
    "iqn.2026-11.Org.Example:x",
    "eui.02004567A425678D",  # not an iqn
    "iqn.2026-11.:x",  # no domain
    "iqn.2026-11.org.example:" + "x" * 220,  # over 223 bytes
])
def test_invalid_iqns_are_refused(iqn):
    with pytest.raises(ValidationError):
        validate_iqn(iqn)


def test_full_iqn_needs_a_label():
    with pytest.raises(ValidationError, match="label"):
        validate_iqn("iqn.2026-11.org.example")


def test_naming_authority_has_no_label():
    assert validate_iqn("iqn.2026-11.org.example", with_label=False)
    with pytest.raises(ValidationError):
        validate_iqn("iqn.2026-11.org.example:x", with_label=False)


def test_initiator_iqn_is_built_from_authority_and_hostname():
    assert initiator_iqn("iqn.2026-11.org.example", "web1") == (
        "iqn.2026-11.org.example:initiator:web1")


@pytest.mark.parametrize("text", ["52:54:00:12:34:56", "52-54-00-12-34-56", "5254.0012.3456",
                                  "525400123456", "01:00:5e:00:00:01"])
def test_every_mac_spelling_looks_like_a_mac(text):
    assert looks_like_mac(text)


@pytest.mark.parametrize("text", ["db1", "52:54:00:12:34", "525400123456a"])
def test_other_texts_do_not_look_like_a_mac(text):
    assert not looks_like_mac(text)


def test_host_name_is_a_lower_cased_hostname():
    assert validate_host_name("DB1") == "db1"


def test_host_name_spelled_as_a_mac_is_refused():
    with pytest.raises(ValidationError, match="spelled as a MAC address"):
        validate_host_name("aabbccddeeff")
