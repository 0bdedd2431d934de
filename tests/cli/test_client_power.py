"""`netboot client set --bmc` and `netboot client power` as a user runs them: the BMC's URL
checked, its password from a file or the prompt (never argv), masked when shown, and power
through a real simulated BMC (tests.support.bmc)."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import IPv4Address

import pytest

from tests.conftest import needs_root
from tests.support.bmc import management_network, simulated_bmc
from tests.support.redfish import emulated_bmc, make_certificates

MAC = "52:54:00:aa:00:01"
PASSWORD = "Pw-77e0c3a5b1"


@pytest.fixture
def registered(initialised, tmp_path):
    """A config with client MAC registered and a file holding PASSWORD."""
    initialised("client", "add", MAC)
    (tmp_path / "bmc-password").write_text(PASSWORD + "\n")
    initialised.password_file = tmp_path / "bmc-password"
    return initialised


def test_a_bad_bmc_url_is_a_usage_error_naming_the_option(registered):
    err = registered("client", "set", MAC, "--bmc", "http://admin@198.18.0.5", expect=2).stderr
    assert "Invalid value for '--bmc': 'http://admin@198.18.0.5' is not " \
           "ipmi://USER@ADDRESS[:PORT] or redfish://USER@HOST[:PORT][/redfish/v1/Systems/ID]: " \
           "the scheme must be ipmi://, redfish://" in err


def test_a_password_in_the_url_is_refused_before_anything_is_stored(registered):
    err = registered("client", "set", MAC, "--bmc", f"ipmi://admin:{PASSWORD}@198.18.0.5",
                     expect=2).stderr
    assert "must not hold the password" in err
    assert json.loads(registered("client", "show", MAC, "--json").stdout)["bmc"] is None


def test_the_bmc_is_shown_with_its_password_masked_unless_asked(registered):
    out = registered("client", "set", MAC, "--bmc", "ipmi://admin@198.18.0.5",
                     "--bmc-password-file", str(registered.password_file)).stdout
    assert out.strip() == f"{MAC}: BMC ipmi://admin@198.18.0.5:623"
    shown = registered("client", "show", MAC).stdout
    assert "ipmi://admin@198.18.0.5:623" in shown and PASSWORD not in shown
    assert json.loads(registered("client", "show", MAC, "--json").stdout)["bmc"] == {
        "url": "ipmi://admin@198.18.0.5:623", "kind": "ipmi", "address": "198.18.0.5",
        "port": 623, "username": "admin", "password": "*" * len(PASSWORD), "tls": None}
    assert PASSWORD in registered("client", "show", MAC, "--show-secrets").stdout


def test_without_a_password_file_the_password_is_asked_for(registered):
    done = subprocess.run([sys.executable, "-m", "netboot", "--config", str(registered.config),
                           "client", "set", MAC, "--bmc", "ipmi://root@198.18.0.6:6231"],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "password of root on BMC 198.18.0.6:6231" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    shown = json.loads(registered("client", "show", MAC, "--json", "--show-secrets").stdout)
    assert shown["bmc"]["password"] == PASSWORD


def test_no_bmc_removes_it(registered):
    registered("client", "set", MAC, "--bmc", "ipmi://admin@198.18.0.5",
               "--bmc-password-file", str(registered.password_file))
    assert registered("client", "set", MAC, "--no-bmc").stdout.strip() == f"{MAC}: BMC removed"
    assert json.loads(registered("client", "show", MAC, "--json").stdout)["bmc"] is None


def test_bmc_and_no_bmc_together_are_a_usage_error(registered):
    err = registered("client", "set", MAC, "--bmc", "ipmi://admin@198.18.0.5", "--no-bmc",
                     expect=2).stderr
    assert "--bmc and --no-bmc exclude each other" in err


def test_power_of_a_client_without_bmc_says_how_to_give_it_one(registered):
    err = registered("client", "power", MAC, "status", expect=1).stderr
    assert f"Error: client {MAC} has no BMC: give it one with 'netboot client set {MAC} " \
           "--bmc ipmi://USER@ADDRESS'" in err


def test_power_of_several_clients_reports_each_and_exits_1_if_one_failed(registered):
    other = "52:54:00:aa:00:02"
    done = json.loads(registered("client", "power", MAC, other, "status", "--json",
                                 expect=1).stdout)
    assert [(d["mac"], d["ok"]) for d in done] == [(MAC, False), (other, False)]
    assert done[1]["error"] == f"no client with MAC {other}"


def test_power_wants_a_known_action(registered):
    assert "'reboot' is not one of" in registered("client", "power", MAC, "reboot",
                                                  expect=2).stderr


def test_the_bmc_password_never_reaches_the_log(registered):
    proc = registered("--log-format", "json", "--log-level", "debug", "client", "set", MAC,
                      "--bmc", "ipmi://admin@198.18.0.5", "--bmc-password-file",
                      str(registered.password_file))
    assert PASSWORD not in proc.stderr
    line = json.loads(proc.stderr.splitlines()[-1])
    assert (line["mac"], line["msg"]) == (MAC, "BMC set to ipmi://admin@198.18.0.5:623")


@pytest.mark.root
@needs_root
def test_client_power_through_a_real_bmc(registered, tmp_path):
    with management_network() as (netns, address), \
            simulated_bmc(netns, address, tmp_path / "bmc", PASSWORD) as sim:
        registered("client", "set", MAC, "--bmc", sim.bmc.url, "--bmc-password-file",
                   str(registered.password_file))
        assert registered("client", "power", MAC, "status").stdout.strip() == \
            f"{MAC}: power off"
        cycled = json.loads(registered("--log-level", "debug", "client", "power", MAC, "cycle",
                                       "--json").stdout)
        assert (cycled[0]["power"], cycled[0]["done"]) == (
            "on", "was off: powered on, booting from the network")
        off = registered("--log-level", "debug", "client", "power", MAC, "off")
        assert off.stdout.startswith(f"{MAC}: shut down by its OS in ")
        assert PASSWORD not in off.stdout + off.stderr
        registered("client", "power", MAC, "on")
        hard = registered("client", "power", MAC, "off", "--hard")
        assert hard.stdout.strip() == f"{MAC}: powered off (hard)"


def test_a_redfish_bmc_keeps_its_ca_and_show_says_how_its_certificate_is_checked(registered,
                                                                                  tmp_path):
    ca = make_certificates(tmp_path / "tls", IPv4Address("198.18.0.5")).ca
    out = registered("client", "set", MAC, "--bmc", "redfish://admin@198.18.0.5",
                     "--bmc-password-file", str(registered.password_file),
                     "--bmc-ca-file", str(ca)).stdout
    assert out.strip() == (f"{MAC}: BMC redfish://admin@198.18.0.5:443 (TLS: certificate "
                           "checked against the CA given (--bmc-ca-file))")
    shown = json.loads(registered("client", "show", MAC, "--json").stdout)["bmc"]
    assert (shown["kind"], shown["tls"], shown["password"]) == ("redfish", "ca",
                                                                "*" * len(PASSWORD))
    assert "certificate checked against the CA given" in registered("client", "show",
                                                                   MAC).stdout


def test_tls_options_go_with_a_redfish_bmc_only(registered):
    err = registered("client", "set", MAC, "--bmc", "ipmi://admin@198.18.0.5",
                     "--bmc-password-file", str(registered.password_file), "--bmc-insecure",
                     expect=1).stderr
    assert "a ipmi BMC has no TLS: --bmc-ca-file and --bmc-insecure go with a redfish:// " \
           "BMC" in err
    assert "go with --bmc" in registered("client", "set", MAC, "--bmc-insecure",
                                         expect=2).stderr


@pytest.mark.root
@needs_root
def test_client_power_through_a_real_redfish_service(registered, tmp_path):
    with management_network() as (netns, address), \
            emulated_bmc(netns, address, tmp_path / "redfish", PASSWORD) as emulated:
        registered("client", "set", MAC, "--bmc", emulated.bmc.url, "--bmc-password-file",
                   str(registered.password_file), "--bmc-ca-file",
                   str(emulated.certificates.ca))
        assert registered("client", "power", MAC, "status").stdout.strip() == \
            f"{MAC}: power off"
        pxe = registered("--log-level", "debug", "client", "power", MAC, "pxe")
        assert pxe.stdout.strip() == f"{MAC}: next boot from the network"
        assert PASSWORD not in pxe.stdout + pxe.stderr
        assert emulated.system()["Boot"]["BootSourceOverrideTarget"] == "Pxe"
        registered("client", "set", MAC, "--bmc", emulated.bmc.url, "--bmc-password-file",
                   str(registered.password_file))  # no CA: the system's CAs do not know it
        err = registered("client", "power", MAC, "status", expect=1).stderr
        assert f"Error: client {MAC}: BMC {emulated.bmc.where}: its TLS certificate is not " \
               "trusted" in err
