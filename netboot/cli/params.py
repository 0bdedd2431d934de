"""Click parameter types for netboot's values, so commands get them parsed and checked."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import click

from netboot.arch import Arch
from netboot.errors import ValidationError
from netboot.inventory.luns import LunOwner
from netboot.names import normalize_mac, validate_host_name
from netboot.power.bmc import URL_FORM, Bmc, parse_bmc_url
from netboot.size import parse_size


class _Converted(click.ParamType):
    """A type whose conversion raises ValueError or ValidationError with a readable message."""

    def convert_value(self, value: str):
        raise NotImplementedError

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.convert_value(value)
        except (ValueError, ValidationError) as err:
            self.fail(str(err), param, ctx)


class MacType(_Converted):
    name = "MAC"

    def convert_value(self, value: str) -> str:
        return normalize_mac(value)


class HostNameType(_Converted):
    name = "HOST"

    def convert_value(self, value: str) -> str:
        return validate_host_name(value)


class LunOwnerType(_Converted):
    """A client's MAC, or else a SAN host's name (:meth:`LunOwner.parse`)."""

    name = "MAC|HOST"

    def convert_value(self, value: str) -> LunOwner:
        return LunOwner.parse(value)


class SizeType(_Converted):
    name = "SIZE"

    def convert_value(self, value: str) -> int:
        return parse_size(value)


class IPv4Type(_Converted):
    name = "IP"

    def convert_value(self, value: str) -> IPv4Address:
        return IPv4Address(value)


class NetworkType(_Converted):
    name = "CIDR"

    def convert_value(self, value: str) -> IPv4Network:
        return IPv4Network(value, strict=True)


class BmcUrlType(_Converted):
    """``ipmi://USER@ADDRESS[:PORT]``: a BMC without its password (read apart)."""

    name = URL_FORM

    def convert_value(self, value: str) -> Bmc:
        return parse_bmc_url(value)


MAC = MacType()
HOST_NAME = HostNameType()
LUN_OWNER = LunOwnerType()
SIZE = SizeType()
IPV4 = IPv4Type()
NETWORK = NetworkType()
BMC_URL = BmcUrlType()


# the options `client show` and `host show` share
SHOW_SECRETS = click.option("--show-secrets", is_flag=True,
                            help="Print secrets (CHAP; a client's BMC password) instead of masking "
                            "them.")
INITIATOR_CONFIG = click.option(
    "--initiator-config", is_flag=True,
    help="What an open-iscsi host needs: initiator name, CHAP lines, iscsiadm commands "
    "(includes the secrets).")
ARCH = click.option("--arch", type=click.Choice([a.value for a in Arch]), default=Arch.AMD64.value,
                    show_default=True, callback=lambda _ctx, _param, value: Arch(value),
                    help="The architecture of the machines it is for (each has its own).")
