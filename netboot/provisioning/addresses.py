"""Choosing a client's fixed address: a pure function of what is taken."""

from collections.abc import Collection, Container
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
    reserved: Collection[IPv4Address],
    dynamic_range: tuple[IPv4Address, IPv4Address],
    taken: Container[int],
) -> IPv4Address:
    """The lowest host address of ``subnet`` that is free for a new client.

    ``taken``: the clients' addresses as integers (``int(IPv4Address)``): with 10,000
    clients, making and hashing an IPv4Address for each on every add cost 30 ms."""
    start, end = (int(ip) for ip in dynamic_range)
    blocked = {int(ip) for ip in reserved}
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    hosts = range(first + 1, last) if last - first > 1 else range(first, last + 1)  # /31, /32
    for number in hosts:
        if start <= number <= end or number in blocked or number in taken:
            continue
        return IPv4Address(number)
    raise Conflict(
        f"no free address left in {subnet} outside the dynamic range "
        f"{dynamic_range[0]}-{dynamic_range[1]}: widen the subnet or shrink "
        "dhcp.range_start..range_end"
    )
