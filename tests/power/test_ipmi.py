"""ipmitool's command lines and what its answers mean (the live BMC is in test_ipmi_live)."""

import re
from pathlib import Path

import pytest

from netboot.power.bmc import Bmc, BmcError, PowerState
from netboot.power.ipmi import (
    Answer,
    Command,
    check_bootdev,
    failure,
    ipmitool_argv,
    power_state,
)

BMC = Bmc("198.18.0.5", "admin", "s3cret-pw", 6231)


def test_the_argv_is_lanplus_cipher_suite_3_with_the_password_in_a_file():
    argv = ipmitool_argv(Command.ON, BMC, Path("/run/x/password"))
    assert argv == ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "198.18.0.5", "-p", "6231",
                    "-U", "admin", "-f", "/run/x/password", "-v", "chassis", "power", "on"]


@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.name)
def test_no_argv_holds_the_password_or_takes_it_from_the_environment(command):
    argv = ipmitool_argv(command, BMC, Path("/run/x/password"))
    assert not any(BMC.password in word for word in argv)
    assert "-E" not in argv and "-P" not in argv


def test_next_boot_from_the_network_is_chassis_bootdev_pxe():
    assert ipmitool_argv(Command.BOOTDEV_PXE, BMC, Path("p"))[-3:] == ["chassis", "bootdev",
                                                                       "pxe"]


@pytest.mark.parametrize(("said", "state"), [("Chassis Power is on\n", PowerState.ON),
                                             ("Chassis Power is off\n", PowerState.OFF)])
def test_the_power_status_is_read_from_its_line(said, state):
    assert power_state(BMC, Answer(0, said, "Loading IANA PEN Registry...\n")) is state


def test_an_unexpected_status_answer_is_an_error_quoting_it():
    with pytest.raises(BmcError, match=re.escape("198.18.0.5:6231 answered the power status "
                                                 "with 'Chassis Power is unknown'")):
        power_state(BMC, Answer(0, "Chassis Power is unknown\n", ""))


def test_bootdev_refused_with_exit_status_0_is_an_error():
    refused = Answer(0, "", "Error setting Chassis Boot Parameter 5\n")
    with pytest.raises(BmcError, match="did not set the next boot to the network: Error setting"):
        check_bootdev(BMC, refused)
    check_bootdev(BMC, Answer(0, "Set Boot Device to pxe\n", ""))


# What ipmitool 1.8.19 -v says (seen against ipmi_sim): the session error alone is the same
# for all three; the line before it names the cause.
SESSION = "Error: Unable to establish IPMI v2 / RMCP+ session\n"


@pytest.mark.parametrize(("stderr", "message"), [
    ("> RAKP 2 HMAC is invalid\n" + SESSION,
     "BMC 198.18.0.5:6231 refused user admin: wrong password?"),
    ("RAKP 2 message indicates an error : unauthorized name\n" + SESSION,
     "BMC 198.18.0.5:6231 has no user admin"),
    ("Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities "
     "request\n" + SESSION,
     "BMC 198.18.0.5:6231 does not answer IPMI over the LAN: wrong address or port"),
    ("Address lookup for bmc.example failed\nCould not open socket!\n" + SESSION,
     "no such host name"),
    ("Unable to set Chassis Power Control to Cycle\n", "Unable to set Chassis Power Control"),
])
def test_a_failure_is_one_clear_sentence_naming_the_bmc(stderr, message):
    assert message in str(failure(BMC, Answer(1, "", "Loading IANA PEN Registry...\n" + stderr)))
