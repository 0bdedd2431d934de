"""A BMC as people name it: ipmi://USER@ADDRESS[:PORT] or
redfish://USER@HOST[:PORT][/redfish/v1/Systems/ID], its password and CA apart."""

from ipaddress import IPv4Address

import pytest

from netboot.errors import ValidationError
from netboot.power.bmc import (
    Bmc,
    BmcKind,
    TlsTrust,
    check_password,
    parse_bmc_url,
    read_ca_file,
    read_password_file,
    with_tls,
)
from tests.support.redfish import make_certificates


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
    ("https://admin@198.18.0.5", "the scheme must be ipmi://, redfish://"),
    ("198.18.0.5", "the scheme must be ipmi://, redfish://"),
    ("ipmi://198.18.0.5", "the user name is missing"),
    ("ipmi://admin@", "the address is missing"),
    ("ipmi://admin@198.18.0.5/x", "nothing may follow an IPMI BMC's address"),
    ("redfish://admin@198.18.0.5/redfish/v1/Chassis/1", "a Redfish path is /redfish/v1/Systems/ID"),
    ("redfish://admin@198.18.0.5/redfish/v1/Systems/", "a Redfish path is"),
    ("redfish://admin@198.18.0.5/redfish/v1/Systems/1/Bios", "a Redfish path is"),
    ("redfish://admin@198.18.0.5/redfish/v1/Systems/1?x=1", "nothing may follow the path"),
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
    assert read_password_file(path, BmcKind.IPMI) == "s3cret"


def test_an_empty_or_missing_password_file_is_refused(tmp_path):
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValidationError, match="empty"):
        read_password_file(tmp_path / "empty", BmcKind.IPMI)
    with pytest.raises(ValidationError, match="cannot read the BMC password from"):
        read_password_file(tmp_path / "missing", BmcKind.REDFISH)


def test_a_password_longer_than_ipmis_20_bytes_is_refused_for_ipmi_only():
    assert check_password("x" * 20, BmcKind.IPMI) == "x" * 20
    with pytest.raises(ValidationError, match="at most 20 bytes"):
        check_password("x" * 21, BmcKind.IPMI)
    assert check_password("x" * 64, BmcKind.REDFISH) == "x" * 64


def test_a_redfish_url_without_port_or_path_is_https_on_443_and_the_bmcs_only_system():
    bmc = parse_bmc_url("redfish://admin@bmc7.example", password="pw")
    assert (bmc.kind, bmc.port, bmc.system) == (BmcKind.REDFISH, 443, "")
    assert bmc.url == "redfish://admin@bmc7.example:443"
    assert bmc.trust is TlsTrust.SYSTEM


def test_a_redfish_url_may_name_the_system_and_shows_it():
    bmc = parse_bmc_url("redfish://root@198.18.0.5:8443/redfish/v1/Systems/System.Embedded.1/")
    assert (bmc.port, bmc.system) == (8443, "/redfish/v1/Systems/System.Embedded.1")
    assert bmc.url == "redfish://root@198.18.0.5:8443/redfish/v1/Systems/System.Embedded.1"


def test_an_ipmi_bmc_has_no_tls_to_check():
    bmc = parse_bmc_url("ipmi://admin@198.18.0.5")
    assert bmc.trust is None
    assert with_tls(bmc, None, False) == bmc
    with pytest.raises(ValidationError, match="a ipmi BMC has no TLS"):
        with_tls(bmc, None, True)


def test_a_redfish_bmc_is_checked_against_a_ca_given_or_not_at_all_but_not_both():
    bmc = parse_bmc_url("redfish://admin@198.18.0.5")
    assert with_tls(bmc, "PEM", False).trust is TlsTrust.CA
    assert with_tls(bmc, None, True).trust is TlsTrust.INSECURE
    with pytest.raises(ValidationError, match="exclude each other"):
        with_tls(bmc, "PEM", True)


def test_a_ca_file_must_hold_a_certificate_that_loads(tmp_path):
    ca = make_certificates(tmp_path / "tls", IPv4Address("198.18.0.5")).ca
    assert read_ca_file(ca) == ca.read_text()
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(ValidationError, match="holds no PEM certificate"):
        read_ca_file(tmp_path / "key.pem")
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                      "-----END CERTIFICATE-----\n")
    with pytest.raises(ValidationError, match="not a usable CA certificate"):
        read_ca_file(tmp_path / "bad.pem")
    with pytest.raises(ValidationError, match="cannot read the BMC's CA certificate"):
        read_ca_file(tmp_path / "missing.pem")
