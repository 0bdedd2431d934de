"""A client's BMC and what can be asked of it: the records, and the URL people type.

A BMC is named as ``ipmi://USER@ADDRESS[:PORT]`` (port 623 by default, IPMI's
RMCP+ port) or ``redfish://USER@HOST[:PORT][/redfish/v1/Systems/ID]`` (HTTPS, port
443 by default; without the system's path, the BMC's only system). Its password never
travels in the URL or on a command line: it is read from a file or a prompt and kept
with the client in the inventory, as the CHAP secrets are (left out of every
``repr``, masked where shown). A Redfish BMC's certificate is checked against the
system's CAs, or against a CA certificate the admin gives (kept with the BMC, so any
server reading the inventory can check it), or, if the admin says so, not at all.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from enum import StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import urlsplit

from netboot.errors import NetbootError, ValidationError
from netboot.names import validate_hostname

IPMI_PORT = 623  # RMCP+ (IPMI over LAN)
HTTPS_PORT = 443  # RFC 9110: Redfish is HTTPS (DMTF DSP0266)
IPMI_PASSWORD_MAX = 20  # IPMI 2.0 passwords are at most 20 bytes
SYSTEMS = "/redfish/v1/Systems/"  # DSP0266: where a service lists its ComputerSystems
URL_FORM = "ipmi://USER@ADDRESS[:PORT] or redfish://USER@HOST[:PORT][/redfish/v1/Systems/ID]"


class BmcError(NetbootError):
    """A BMC refused, did not answer, or answered something unexpected; the message names
    the BMC (address:port) and what to check."""


class BmcKind(StrEnum):
    """How netboot talks to a BMC (stored as its value; the URL's scheme)."""

    IPMI = "ipmi"  # IPMI 2.0 over the LAN (RMCP+), through ipmitool -I lanplus
    REDFISH = "redfish"  # DMTF Redfish over HTTPS, through sushy

    @property
    def default_port(self) -> int:
        return IPMI_PORT if self is BmcKind.IPMI else HTTPS_PORT


class TlsTrust(StrEnum):
    """How a Redfish BMC's certificate is checked (stored as the BMC's columns)."""

    SYSTEM = "system"  # against the server's CAs (a BMC whose certificate a public CA signed)
    CA = "ca"  # against the CA certificate(s) given with --bmc-ca-file
    INSECURE = "insecure"  # not at all (--bmc-insecure): a self-signed certificate

    @property
    def shown(self) -> str:
        """For people (``client show``)."""
        return {TlsTrust.SYSTEM: "certificate checked against the system's CAs",
                TlsTrust.CA: "certificate checked against the CA given (--bmc-ca-file)",
                TlsTrust.INSECURE: "certificate NOT checked (--bmc-insecure)"}[self]


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
    system: str = ""  # Redfish: the system's path (/redfish/v1/Systems/ID); "": the only one
    ca_pem: str | None = None  # Redfish: the CA certificate(s) its certificate is checked with
    insecure: bool = False  # Redfish: its certificate is not checked

    @property
    def url(self) -> str:
        """``ipmi://USER@ADDRESS:PORT`` or ``redfish://USER@HOST:PORT[/redfish/v1/Systems/ID]``:
        everything but the password."""
        return f"{self.kind}://{self.username}@{self.address}:{self.port}{self.system}"

    @property
    def trust(self) -> TlsTrust | None:
        """How its HTTPS certificate is checked; None for IPMI (no TLS)."""
        if self.kind is not BmcKind.REDFISH:
            return None
        if self.insecure:
            return TlsTrust.INSECURE
        return TlsTrust.SYSTEM if self.ca_pem is None else TlsTrust.CA

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
    kind = BmcKind(parts.scheme.lower())
    if parts.query or parts.fragment:
        raise ValidationError(f"{text!r} is not {URL_FORM}: nothing may follow the path")
    if port == 0:
        raise ValidationError(f"{text!r}: port 0 is not a port")
    return Bmc(address=_address(parts.hostname), username=parts.username,
               password=password, port=port or kind.default_port, kind=kind,
               system=_system_path(text, kind, parts.path))


def _system_path(text: str, kind: BmcKind, path: str) -> str:
    """The Redfish system's path the URL names ("" for none); IPMI names no path."""
    if path in ("", "/"):
        return ""
    if kind is BmcKind.IPMI:
        raise ValidationError(f"{text!r} is not {URL_FORM}: nothing may follow an IPMI "
                              "BMC's address")
    system = path.rstrip("/")
    ident = system.removeprefix(SYSTEMS.rstrip("/")).removeprefix("/")
    if not system.startswith(SYSTEMS) or not ident or "/" in ident:
        raise ValidationError(f"{text!r} is not {URL_FORM}: a Redfish path is "
                              f"{SYSTEMS}ID (one of the BMC's systems)")
    return system


def with_tls(bmc: Bmc, ca_pem: str | None, insecure: bool) -> Bmc:
    """``bmc`` whose certificate is checked against ``ca_pem`` (None: the system's CAs), or
    not at all if ``insecure``; ValidationError for an IPMI BMC (no TLS) or both asked."""
    if ca_pem is None and not insecure:
        return bmc
    if bmc.kind is not BmcKind.REDFISH:
        raise ValidationError(f"a {bmc.kind} BMC has no TLS: --bmc-ca-file and --bmc-insecure "
                              "go with a redfish:// BMC")
    if ca_pem is not None and insecure:
        raise ValidationError("--bmc-ca-file and --bmc-insecure exclude each other")
    return replace(bmc, ca_pem=ca_pem, insecure=insecure)


def check_password(password: str, kind: BmcKind) -> str:
    """``password`` if a BMC of ``kind`` can have it: one line, not empty (IPMI: at most
    20 bytes)."""
    if not password:
        raise ValidationError("the BMC password is empty")
    if kind is BmcKind.IPMI and len(password.encode()) > IPMI_PASSWORD_MAX:
        raise ValidationError(f"an IPMI password is at most {IPMI_PASSWORD_MAX} bytes")
    if "\n" in password or "\r" in password or "\0" in password:
        raise ValidationError("the BMC password must be one line")
    return password


def read_password_file(path: Path, kind: BmcKind) -> str:
    """The password in ``path`` for a BMC of ``kind``: its first line, without the break."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ValidationError(f"cannot read the BMC password from {path}: "
                              f"{err.strerror}") from None
    lines = text.splitlines()
    return check_password(lines[0] if lines else "", kind)


def read_ca_file(path: Path) -> str:
    """The PEM CA certificate(s) in ``path``, checked to load as TLS trust anchors."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValidationError(f"cannot read the BMC's CA certificate from {path}: "
                              f"{getattr(err, 'strerror', None) or err}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValidationError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as err:
        raise ValidationError(f"{path} is not a usable CA certificate: {err.reason}") from None
    return text
