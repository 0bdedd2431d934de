"""A client's BMC and what can be asked of it: the records, and the URL people type.

A BMC is named as ``ipmi://USER@ADDRESS[:PORT]`` (port 623 by default, IPMI's
RMCP+ port); its password never travels in the URL or on a command line: it is
read from a file or a prompt and kept with the client in the inventory, as the
CHAP secrets are (left out of every ``repr``, masked where shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import urlsplit

from netboot.errors import NetbootError, ValidationError
from netboot.names import validate_hostname

IPMI_PORT = 623  # RMCP+ (IPMI over LAN)
PASSWORD_MAX = 20  # IPMI 2.0 passwords are at most 20 bytes
URL_FORM = "ipmi://USER@ADDRESS[:PORT]"


class BmcError(NetbootError):
    """A BMC refused, did not answer, or answered something unexpected; the message names
    the BMC (address:port) and what to check."""


class BmcKind(StrEnum):
    """How netboot talks to a BMC (stored as its value; the URL's scheme)."""

    IPMI = "ipmi"  # IPMI 2.0 over the LAN (RMCP+), through ipmitool -I lanplus


class PowerAction(StrEnum):
    """What ``netboot client power`` asks of a machine."""

    ON = "on"
    OFF = "off"
    CYCLE = "cycle"  # next boot from the network, then off and on (on, if it was off)
    STATUS = "status"
    PXE = "pxe"  # next boot (once) from the network, nothing else


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class Bmc:
    """One machine's BMC. The password is left out of ``repr`` so it never reaches a log."""

    address: str  # an IPv4 address or a host name
    username: str
    password: str = field(repr=False)
    port: int = IPMI_PORT
    kind: BmcKind = BmcKind.IPMI

    @property
    def url(self) -> str:
        """``ipmi://USER@ADDRESS:PORT``: everything but the password."""
        return f"{self.kind}://{self.username}@{self.address}:{self.port}"

    @property
    def where(self) -> str:
        """``ADDRESS:PORT``, as messages name it."""
        return f"{self.address}:{self.port}"


def _address(text: str) -> str:
    try:
        return str(IPv4Address(text))
    except ValueError:
        pass
    if text.replace(".", "").isdigit():
        raise ValidationError(f"{text!r} is not an IPv4 address")
    return validate_hostname(text)


def parse_bmc_url(text: str, password: str = "") -> Bmc:
    """The BMC ``ipmi://USER@ADDRESS[:PORT]`` names (with ``password``); ValidationError
    saying what is wrong otherwise. A password in the URL is refused: it would be on a
    command line and in the shell's history."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as err:
        raise ValidationError(f"{text!r} is not {URL_FORM}: {err}") from None
    if parts.scheme.lower() not in {k.value for k in BmcKind}:
        kinds = ", ".join(f"{k}://" for k in BmcKind)
        raise ValidationError(f"{text!r} is not {URL_FORM}: the scheme must be {kinds}")
    if parts.password is not None:
        raise ValidationError("a BMC URL must not hold the password (it would be on the command "
                              "line): give it with --bmc-password-file, or at the prompt")
    if not parts.username:
        raise ValidationError(f"{text!r} is not {URL_FORM}: the user name is missing")
    if not parts.hostname:
        raise ValidationError(f"{text!r} is not {URL_FORM}: the address is missing")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationError(f"{text!r} is not {URL_FORM}: nothing may follow the address")
    if port == 0:
        raise ValidationError(f"{text!r}: port 0 is not a port")
    return Bmc(address=_address(parts.hostname), username=parts.username,
               password=password, port=port or IPMI_PORT, kind=BmcKind(parts.scheme.lower()))


def check_password(password: str) -> str:
    """``password`` if a BMC can have it: 1 to 20 bytes, one line."""
    if not password:
        raise ValidationError("the BMC password is empty")
    if len(password.encode()) > PASSWORD_MAX:
        raise ValidationError(f"an IPMI password is at most {PASSWORD_MAX} bytes")
    if "\n" in password or "\r" in password or "\0" in password:
        raise ValidationError("the BMC password must be one line")
    return password


def read_password_file(path: Path) -> str:
    """The password in ``path``: its first line, without the line break."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ValidationError(f"cannot read the BMC password from {path}: "
                              f"{err.strerror}") from None
    lines = text.splitlines()
    return check_password(lines[0] if lines else "")
