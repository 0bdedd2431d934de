"""Redfish over HTTPS through sushy: the reset each power action asks for, reading the
errors it raises, and the driver that talks to one ComputerSystem.

sushy (OpenStack's Redfish client, what Ironic drives BMCs with) knows the vendors'
quirks: the allowed reset types given inline or through an ActionInfo resource, the
boot override's PATCH, retries of a BMC that is busy. The password goes to it in this
process (HTTP basic authentication, which every Redfish service must accept, and no
session left open on the BMC): never on a command line, in the environment, or in a
log (sushy's own log lines, which quote URLs and bodies, go nowhere unless the
application routes the ``sushy`` logger). A CA certificate kept with the BMC is given
to it as a file of its own, removed after the call.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import warnings
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

import sushy
from sushy import auth as sushy_auth
from sushy import exceptions as sushy_exc
from urllib3.exceptions import ConnectTimeoutError, InsecureRequestWarning, NameResolutionError

from netboot.host.files import private_file
from netboot.power.bmc import Bmc, BmcError, PowerState

logging.getLogger("sushy").addHandler(logging.NullHandler())

CONNECT_TIMEOUT = 10.0  # seconds to open the connection: a silent BMC fails fast
READ_TIMEOUT = 60.0  # seconds for an answer: some BMCs take long to power a machine on
HTTP_UNAUTHORIZED = 401  # RFC 9110 section 15.5.2: wrong user name or password
CA_PREFIX = "netboot-bmc-ca-"  # the CA certificate's directory, in the temporary directory

# What each power action asks of the BMC (DSP0268 ComputerSystem.Reset's ResetType), in order
# of preference: the first the system allows is used.
ON: tuple[sushy.ResetType, ...] = (sushy.ResetType.ON, sushy.ResetType.FORCE_ON)
OFF: tuple[sushy.ResetType, ...] = (sushy.ResetType.FORCE_OFF,)  # as ipmitool's power off
SOFT: tuple[sushy.ResetType, ...] = (sushy.ResetType.GRACEFUL_SHUTDOWN,  # as power soft
                                     sushy.ResetType.PUSH_POWER_BUTTON)
CYCLE: tuple[sushy.ResetType, ...] = (sushy.ResetType.POWER_CYCLE,
                                      sushy.ResetType.FORCE_RESTART)

# DSP0268 PowerState; one on its way is taken for where it goes
_POWER = {sushy.PowerState.ON: PowerState.ON, sushy.PowerState.POWERING_ON: PowerState.ON,
          sushy.PowerState.OFF: PowerState.OFF, sushy.PowerState.POWERING_OFF: PowerState.OFF}


def reset_type(bmc: Bmc, wanted: Sequence[sushy.ResetType],
               allowed: Collection[sushy.ResetType]) -> sushy.ResetType:
    """The first of ``wanted`` the system allows; BmcError naming both lists otherwise."""
    for choice in wanted:
        if choice in allowed:
            return choice
    names = ", ".join(sorted(str(a.value) for a in allowed)) or "none"
    asked = " or ".join(str(w.value) for w in wanted)
    raise BmcError(f"BMC {bmc.where}: the system does not allow the reset {asked} "
                   f"(it allows {names})")


def power_state(bmc: Bmc, state: sushy.PowerState | None) -> PowerState:
    """The machine's power as the system's PowerState gives it."""
    if state not in _POWER:
        raise BmcError(f"BMC {bmc.where} gave the power state {state!r}, not On or Off")
    return _POWER[state]


def _reason(err: BaseException) -> BaseException:
    """The innermost cause of a failed connection: sushy wraps requests, which wraps
    urllib3 (``reason``), which wraps the socket's or TLS's own error."""
    seen = {id(err)}
    while True:
        inner = getattr(err, "reason", None)
        if not isinstance(inner, BaseException):
            first = err.args[0] if err.args else None
            inner = first if isinstance(first, BaseException) else (err.__cause__
                                                                      or err.__context__)
        if inner is None or id(inner) in seen:
            return err
        seen.add(id(inner))
        err = inner


def _unreachable(bmc: Bmc, reason: BaseException) -> BmcError:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return BmcError(f"BMC {bmc.where}: its TLS certificate is not trusted "
                        f"({reason.verify_message}): give its CA with --bmc-ca-file, or "
                        "--bmc-insecure for a self-signed one")
    if isinstance(reason, ssl.SSLError):
        return BmcError(f"BMC {bmc.where}: TLS failed ({reason.reason or reason}): is it "
                        "HTTPS at this port?")
    if isinstance(reason, NameResolutionError | socket.gaierror):
        return BmcError(f"BMC {bmc.where}: no such host name ({bmc.address} does not resolve)")
    if isinstance(reason, ConnectTimeoutError | TimeoutError):
        return BmcError(f"BMC {bmc.where}: no answer within {CONNECT_TIMEOUT:.0f} s: wrong "
                        "address, or not reachable from here")
    if isinstance(reason, ConnectionRefusedError) or (
            isinstance(reason, OSError) and reason.errno == errno.ECONNREFUSED):
        return BmcError(f"BMC {bmc.where} refused the connection: nothing serves Redfish at "
                        "this port")
    if isinstance(reason, OSError) and reason.strerror:
        return BmcError(f"BMC {bmc.where} is not reachable: {reason.strerror}")
    return BmcError(f"BMC {bmc.where} is not reachable: {reason}")


def failure(bmc: Bmc, err: sushy_exc.SushyError) -> BmcError:
    """The one clear error for what sushy raised, naming the BMC and what to check."""
    if isinstance(err, sushy_exc.ConnectionError):
        return _unreachable(bmc, _reason(err))
    if isinstance(err, sushy_exc.AccessError):
        if err.status_code == HTTP_UNAUTHORIZED:
            return BmcError(f"BMC {bmc.where} refused user {bmc.username}: wrong user name or "
                            "password?")
        return BmcError(f"BMC {bmc.where}: user {bmc.username} may not do this "
                        f"(HTTP {err.status_code}): give it a role that may")
    if isinstance(err, sushy_exc.ResourceNotFoundError):
        return BmcError(f"BMC {bmc.where}: {err} (check the system's path in its URL)")
    if isinstance(err, sushy_exc.InvalidParameterValueError):
        return BmcError(f"BMC {bmc.where} does not allow this: {err}")
    return BmcError(f"BMC {bmc.where}: {err}")


class RedfishSystem:
    """One ComputerSystem of a Redfish BMC, reached anew for each command (as ipmitool is
    run once per command: nothing held open between them)."""

    def __init__(self, bmc: Bmc) -> None:
        self.bmc = bmc

    @contextmanager
    def _system(self) -> Iterator[sushy.resources.system.system.System]:
        """The system, with sushy's errors turned into BmcError."""
        with self._verify() as verify, warnings.catch_warnings():
            # --bmc-insecure was the admin's choice, and `client show` says it
            warnings.simplefilter("ignore", InsecureRequestWarning)
            try:
                root = sushy.Sushy(
                    f"https://{self.bmc.address}:{self.bmc.port}",
                    auth=sushy_auth.BasicAuth(self.bmc.username, self.bmc.password),
                    verify=verify, server_side_retries=1, connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT)
                yield root.get_system(self._identity(root))
            except sushy_exc.SushyError as err:
                raise failure(self.bmc, err) from None

    def _identity(self, root: sushy.Sushy) -> str:
        """The system's path: the URL's, else the BMC's only system."""
        if self.bmc.system:
            return self.bmc.system
        members = sorted(root.get_system_collection().members_identities)
        if len(members) != 1:
            raise BmcError(f"BMC {self.bmc.where} has {len(members)} systems "
                           f"({', '.join(members) or 'none'}): name one in its URL, "
                           f"redfish://{self.bmc.username}@{self.bmc.where}/redfish/v1/"
                           "Systems/ID")
        return members[0]

    @contextmanager
    def _verify(self) -> Iterator[bool | str]:
        """What requests checks the certificate with: the system's CAs (True), none
        (False), or the CA kept with the BMC, in a file for the call."""
        if self.bmc.ca_pem is None:
            yield not self.bmc.insecure
            return
        with private_file(self.bmc.ca_pem, CA_PREFIX) as path:
            yield str(path)

    def status(self) -> PowerState:
        with self._system() as system:
            return power_state(self.bmc, system.power_state)

    def _reset(self, wanted: Sequence[sushy.ResetType]) -> None:
        with self._system() as system:
            system.reset_system(reset_type(self.bmc, wanted,
                                           system.get_allowed_reset_system_values()))

    def on(self) -> None:
        self._reset(ON)

    def off(self) -> None:
        self._reset(OFF)

    def soft(self) -> None:
        self._reset(SOFT)

    def cycle(self) -> None:
        self._reset(CYCLE)

    def boot_from_network(self) -> None:
        """Next boot (once) from the network: DSP0268 Boot.BootSourceOverrideTarget Pxe."""
        with self._system() as system:
            system.set_system_boot_options(target=sushy.BootSource.PXE,
                                           enabled=sushy.BootSourceOverrideEnabled.ONCE)
