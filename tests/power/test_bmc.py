"""A BMC as people name it: ipmi://USER@ADDRESS[:PORT], its password apart."""

import pytest

from netboot.errors import ValidationError
from netboot.power.bmc import Bmc, BmcKind, check_password, parse_bmc_url, read_password_file


def test_a_url_without_port_names_ipmis_port_623():
    assert parse_bmc_url("ipmi://admin@198.18.0.5") == Bmc("198.18.0.5", "admin", "", 623,
                                                          BmcKind.IPMI)


def test_a_url_may_give_the_port_and_a_host_name():
    bmc = parse_bmc_url("IPMI://root@BMC-7.example:6231", password="pw")
    assert (bmc.address, bmc.port, bmc.username, bmc.password) == ("bmc-7.example", 6231,
                                                                   "root", "pw")


def test_the_url_shown_holds_everything_but_the_password():
    bmc = parse_bmc_url("ipmi://admin@198.18.0.5", password="s3cret")
    assert bmc.url == "ipmi://admin@198.18.0.5:623"
    assert "s3cret" not in repr(bmc)


def test_a_password_in_the_url_is_refused_saying_where_it_goes():
    with pytest.raises(ValidationError, match=r"must not hold the password.*--bmc-password-file"):
        parse_bmc_url("ipmi://admin:s3cret@198.18.0.5")


@pytest.mark.parametrize(("url", "said"), [
    ("redfish://admin@198.18.0.5", "the scheme must be ipmi://"),
    ("198.18.0.5", "the scheme must be ipmi://"),
    ("ipmi://198.18.0.5", "the user name is missing"),
    ("ipmi://admin@", "the address is missing"),
    ("ipmi://admin@198.18.0.5/x", "nothing may follow the address"),
    ("ipmi://admin@198.18.0.5:99999", "is not ipmi://USER@ADDRESS"),
    ("ipmi://admin@198.18.0.500", "not an IPv4 address"),
    ("ipmi://admin@bad_host", "not valid"),
])
def test_a_bad_url_is_refused_saying_what_is_wrong(url, said):
    with pytest.raises(ValidationError, match=said):
        parse_bmc_url(url)


def test_the_password_file_gives_its_first_line(tmp_path):
    path = tmp_path / "pw"
    path.write_text("s3cret\nignored\n")
    assert read_password_file(path) == "s3cret"


def test_an_empty_or_missing_password_file_is_refused(tmp_path):
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValidationError, match="empty"):
        read_password_file(tmp_path / "empty")
    with pytest.raises(ValidationError, match="cannot read the BMC password from"):
        read_password_file(tmp_path / "missing")


def test_a_password_longer_than_ipmis_20_bytes_is_refused():
    assert check_password("x" * 20) == "x" * 20
    with pytest.raises(ValidationError, match="at most 20 bytes"):
        check_password("x" * 21)
