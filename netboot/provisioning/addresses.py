"""Choosing a client's fixed address: a pure function of what is taken."""

from collections.abc import Container
from ipaddress import IPv4Address, IPv4Network

from netboot.errors import Conflict, ValidationError


def check_address(
    ip: IPv4Address,
    subnet: IPv4Network,
    reserved: Container[IPv4Address],
    dynamic_range: tuple[IPv4Address, IPv4Address],
) -> None:
    """Raise unless ``ip`` may be a client's fixed address."""
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
        raise ValidationError(f"{ip} is not a host address in the boot subnet {subnet}")
    if ip in reserved:
        raise Conflict(f"{ip} belongs to the server, the router or the portal")
    start, end = dynamic_range
    if start <= ip <= end:
        raise ValidationError(
            f"{ip} is inside the dynamic range {start}-{end}, which is kept for unknown machines"
        )


def pick_address(
    subnet: IPv4Network,
    reserved: Container[IPv4Address],
    dynamic_range: tuple[IPv4Address, IPv4Address],
    taken: Container[IPv4Address],
) -> IPv4Address:
    """The lowest host address of ``subnet`` that is free for a new client."""
    start, end = dynamic_range
    for ip in subnet.hosts():
        if start <= ip <= end or ip in reserved or ip in taken:
            continue
        return ip
    raise Conflict(
        f"no free address left in {subnet} outside the dynamic range {start}-{end}: "
        "widen the subnet or shrink dhcp.range_start..range_end"
    )
