"""Which Redfish reset each action asks for, the power states read, and what sushy's errors
mean (the live BMC is in test_redfish_live)."""

import errno
import socket
import ssl

import pytest
import requests
import sushy
from sushy import exceptions as sushy_exc
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from netboot.power.bmc import Bmc, BmcError, BmcKind, PowerState
from netboot.power.redfish import CYCLE, OFF, ON, failure, power_state, reset_type

BMC = Bmc("198.18.0.5", "admin", "s3cret-pw", 443, BmcKind.REDFISH)
R = sushy.ResetType


def test_a_cycle_is_a_power_cycle_where_allowed_else_a_forced_restart():
    assert reset_type(BMC, CYCLE, {R.ON, R.FORCE_OFF, R.POWER_CYCLE, R.FORCE_RESTART}) \
        is R.POWER_CYCLE
    assert reset_type(BMC, CYCLE, {R.ON, R.FORCE_OFF, R.FORCE_RESTART}) is R.FORCE_RESTART


def test_on_is_on_else_forced_on_and_off_is_forced_off():
    assert reset_type(BMC, ON, {R.FORCE_ON, R.ON}) is R.ON
    assert reset_type(BMC, ON, {R.FORCE_ON}) is R.FORCE_ON
    assert reset_type(BMC, OFF, {R.GRACEFUL_SHUTDOWN, R.FORCE_OFF}) is R.FORCE_OFF


def test_a_reset_the_system_does_not_allow_is_an_error_naming_what_it_allows():
    with pytest.raises(BmcError) as raised:
        reset_type(BMC, OFF, {R.ON, R.GRACEFUL_SHUTDOWN})
    assert str(raised.value) == ("BMC 198.18.0.5:443: the system does not allow the reset "
                                 "ForceOff (it allows GracefulShutdown, On)")


@pytest.mark.parametrize(("state", "power"), [
    (sushy.PowerState.ON, PowerState.ON), (sushy.PowerState.POWERING_ON, PowerState.ON),
    (sushy.PowerState.OFF, PowerState.OFF), (sushy.PowerState.POWERING_OFF, PowerState.OFF)])
def test_a_power_state_on_its_way_is_taken_for_where_it_goes(state, power):
    assert power_state(BMC, state) is power


def test_a_missing_power_state_is_an_error():
    with pytest.raises(BmcError, match="gave the power state None, not On or Off"):
        power_state(BMC, None)


class _Response:
    """What sushy's HTTPError reads of a response."""

    def __init__(self, status: int) -> None:
        self.status_code = status

    def json(self) -> dict:
        return {"error": {"code": "Base.1.0.GeneralError", "message": "denied"}}


def test_401_is_a_wrong_user_or_password_naming_the_bmc_and_user_never_the_password():
    err = sushy_exc.AccessError("GET", "https://198.18.0.5:443/redfish/v1/Systems",
                                _Response(401))
    said = str(failure(BMC, err))
    assert said == "BMC 198.18.0.5:443 refused user admin: wrong user name or password?"
    assert BMC.password not in said


def test_403_says_the_user_lacks_the_role():
    err = sushy_exc.AccessError("POST", "https://198.18.0.5:443/x", _Response(403))
    assert "user admin may not do this (HTTP 403)" in str(failure(BMC, err))


def _wrapped(reason: BaseException) -> sushy_exc.ConnectionError:
    """As sushy raises it: its ConnectionError, in the context of requests' error, whose
    first argument is urllib3's MaxRetryError with the reason."""
    try:
        raise requests.exceptions.ConnectionError(MaxRetryError(None, "/redfish/v1/", reason))
    except requests.exceptions.ConnectionError as err:
        try:
            raise sushy_exc.ConnectionError(url="https://198.18.0.5:443/redfish/v1/", error=err)
        except sushy_exc.ConnectionError as outer:
            return outer


def test_an_untrusted_certificate_says_how_to_trust_it():
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate"
    said = str(failure(BMC, _wrapped(untrusted)))
    assert said == ("BMC 198.18.0.5:443: its TLS certificate is not trusted (self-signed "
                    "certificate): give its CA with --bmc-ca-file, or --bmc-insecure for a "
                    "self-signed one")


def test_a_refused_connection_and_a_silent_bmc_are_named():
    refused = OSError(errno.ECONNREFUSED, "Connection refused")
    assert str(failure(BMC, _wrapped(refused))) == (
        "BMC 198.18.0.5:443 refused the connection: nothing serves Redfish at this port")
    assert "no answer within 10 s" in str(failure(BMC, _wrapped(ConnectTimeoutError())))


def test_a_host_name_that_does_not_resolve_is_named():
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert str(failure(BMC, _wrapped(unknown))) == (
        "BMC 198.18.0.5:443: no such host name (198.18.0.5 does not resolve)")
