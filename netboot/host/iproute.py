"""iproute2 (`ip`) as netboot uses it: interface addresses, namespaces, bridges, veth, taps.

The lab and the tests build their boot VLANs from these; every name they
create is given by the caller so it can be removed again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from pathlib import Path

from netboot.host.run import run


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (inside ``netns`` if given) and return its stdout."""
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    return run(cmd, what=f"'{' '.join(cmd)}' failed", ok=(0,) if check else None)


def interface_mac(interface: str) -> str | None:
    """``interface``'s MAC (lower-case, colons), or None if there is no such interface."""
    try:
        return Path(f"/sys/class/net/{interface}/address").read_text().strip()
    except OSError:
        return None


def ipv4_addresses(interface: str, netns: str | None = None) -> list[IPv4Interface]:
    """The IPv4 addresses configured on ``interface`` (empty if it has none or does not exist)."""
    return [IPv4Interface(a) for a in _addresses(interface, "inet", netns)]


def ipv6_addresses(interface: str, netns: str | None = None) -> list[IPv6Interface]:
    """The IPv6 addresses configured on ``interface``, link-local ones too."""
    return [IPv6Interface(a) for a in _addresses(interface, "inet6", netns)]


def _addresses(interface: str, family: str, netns: str | None) -> list[str]:
    out = ip("-j", "-f", family, "addr", "show", "dev", interface, netns=netns, check=False)
    try:
        links = json.loads(out or "[]")
    except json.JSONDecodeError:
        return []
    return [f"{a['local']}/{a['prefixlen']}" for link in links
            for a in link.get("addr_info", []) if a.get("family") == family]


def ipv4_routes(netns: str | None = None) -> list[IPv4Network]:
    """The destinations of the IPv4 routes in the main table ("default" is 0.0.0.0/0)."""
    out = ip("-j", "-4", "route", "show", netns=netns, check=False)
    try:
        routes = json.loads(out or "[]")
    except json.JSONDecodeError:
        return []
    return [IPv4Network("0.0.0.0/0" if r["dst"] == "default" else r["dst"], strict=False)
            for r in routes if "dst" in r]


def link_exists(interface: str, netns: str | None = None) -> bool:
    return bool(ip("-j", "link", "show", "dev", interface, netns=netns, check=False).strip())


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside network namespace ``netns``."""
    return ["ip", "netns", "exec", netns, *argv]


def add_netns(name: str) -> None:
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete_netns(name: str) -> None:
    ip("netns", "delete", name, check=False)


def netns_names() -> list[str]:
    """The named network namespaces (those ``ip netns add`` made)."""
    out = ip("-j", "netns", "list", check=False)
    try:
        return [entry["name"] for entry in json.loads(out or "[]")]
    except json.JSONDecodeError:
        return []


def netns_pids(name: str) -> list[int]:
    """The processes running inside namespace ``name`` (none if it does not exist).

    Deleting a namespace does not stop them, and while one holds a tap open
    the tap lives on, so whoever tears a namespace down asks this first.
    """
    return [int(p) for p in ip("netns", "pids", name, check=False).split()]


def add_bridge(name: str, address: IPv4Interface | IPv6Interface | None = None,
               netns: str | None = None) -> None:
    """A bridge, up, with ``address`` (an IPv6 one without DAD: usable at once)."""
    ip("link", "add", name, "type", "bridge", netns=netns)
    # No STP and no forwarding delay: a PXE ROM gives up long before STP's 30 s.
    ip("link", "set", name, "type", "bridge", "stp_state", "0", "forward_delay", "0", netns=netns)
    if address is not None:
        ip("addr", "add", str(address), "dev", name,
           *(["nodad"] if address.version == 6 else []), netns=netns)
    ip("link", "set", name, "up", netns=netns)


def add_veth(name: str, peer: str, *, netns: str | None = None,
             peer_netns: str | None = None) -> None:
    """A veth pair ``name`` (in ``netns``) and ``peer`` (in ``peer_netns``)."""
    ip("link", "add", name, "type", "veth", "peer", "name", peer, netns=netns)
    if peer_netns != netns:
        ip("link", "set", peer, "netns", peer_netns or "1", netns=netns)


def add_tap(name: str, netns: str | None = None) -> None:
    ip("tuntap", "add", "dev", name, "mode", "tap", netns=netns)


def attach(interface: str, bridge: str, netns: str | None = None) -> None:
    ip("link", "set", interface, "master", bridge, netns=netns)
    ip("link", "set", interface, "up", netns=netns)


def set_address(interface: str, address: IPv4Interface, netns: str | None = None) -> None:
    ip("addr", "add", str(address), "dev", interface, netns=netns)
    ip("link", "set", interface, "up", netns=netns)
