"""Load netboot.yaml into a :class:`netboot.config.Config`, validated once.

The YAML is composed into nodes (not plain dicts) so every error can name the
file, the line and the key. Field types drive conversion; rules that tie
several keys together are checked after all sections are read.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from netboot.config import POSTGRES_SCHEMES, SECTIONS, Config, DhcpMode, StorageKind
from netboot.errors import ConfigError, NetbootError, ValidationError
from netboot.names import validate_iqn


@dataclass
class _Source:
    """Where each key came from, so later checks can point at its line."""

    path: str
    lines: dict[str, int]

    def error(self, key: str, message: str) -> ConfigError:
        """An error at ``key``'s line, or the line of the nearest enclosing key that is set."""
        parts = key.split(".")
        enclosing = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
        line = next((self.lines[k] for k in enclosing if k in self.lines), None)
        return ConfigError(self.path, line, key, message)


def load_config(path: str | Path) -> Config:
    """Read, convert and validate the config file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NetbootError(
            f"config file {path} does not exist: create one with "
            "'netboot init --interface IF --subnet CIDR' or pass --config FILE"
        ) from None
    except OSError as err:
        raise NetbootError(f"cannot read config file {path}: {err.strerror}") from None
    return parse_config(text, str(path))


def parse_config(text: str, path: str = "<config>") -> Config:
    """Parse config text; ``path`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(path, line, "(syntax)", f"invalid YAML: {problem}") from None
    source = _Source(path, {})
    if root is None:
        raise ConfigError(path, None, "server", "the file is empty; at least server.address "
                          "and dhcp.subnet are needed")
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(path, root.start_mark.line + 1, "(top level)",
                          "expected a mapping of sections: " + ", ".join(SECTIONS))
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key_node, value_node in _pairs(root, source, "(top level)"):
        name = key_node.value
        source.lines[name] = key_node.start_mark.line + 1
        if name not in SECTIONS:
            raise source.error(name, _unknown(name, SECTIONS, "section"))
        if _is_null(value_node):
            continue
        if not isinstance(value_node, yaml.MappingNode):
            raise source.error(name, "expected a mapping of keys")
        values[name] = _read_section(SECTIONS[name], name, value_node, source)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        missing = [f.name for f in dataclasses.fields(cls) if _required(f)
                   and f.name not in values[name]]
        if missing:
            raise source.error(f"{name}.{missing[0]}", "is required but not set")
        sections[name] = cls(**values[name])
    config = Config(**sections, source=Path(path))
    _check_rules(config, source)
    return config


def _pairs(node: yaml.MappingNode, source: _Source, where: str):
    seen: set[str] = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(source.path, key_node.start_mark.line + 1, where,
                              "keys must be plain names")
        if key_node.value in seen:
            raise ConfigError(source.path, key_node.start_mark.line + 1,
                              key_node.value, "is set twice")
        seen.add(key_node.value)
        yield key_node, value_node


def _read_section(cls: type, name: str, node: yaml.MappingNode,
                  source: _Source) -> dict[str, Any]:
    """The keys of section (or subsection) ``name``, converted to ``cls``'s field types; a
    field that is itself a dataclass is a nested mapping (``storage.rbd.pool``)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key_node, value_node in _pairs(node, source, name):
        key = f"{name}.{key_node.value}"
        source.lines[key] = key_node.start_mark.line + 1
        if key_node.value not in fields:
            raise source.error(key, _unknown(key_node.value, fields, "key"))
        f = fields[key_node.value]
        if dataclasses.is_dataclass(hints[f.name]):
            if not isinstance(value_node, yaml.MappingNode):
                raise source.error(key, "expected a mapping of keys")
            out[f.name] = hints[f.name](**_read_section(hints[f.name], key, value_node,
                                                         source))
            continue
        raw = _construct(value_node)
        if isinstance(raw, bool) and _is_text(hints[f.name]):
            raw = value_node.value  # YAML 1.1 reads a bare `off` or `no` as a boolean
        try:
            out[f.name] = _convert(raw, hints[f.name], f.metadata.get("parse"))
        except (ValueError, TypeError, ValidationError) as err:
            raise source.error(key, str(err)) from None
    return out


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _is_text(tp: Any) -> bool:
    """Whether a field holds words (a string or an enum), not a boolean."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return any(a is str or (isinstance(a, type) and issubclass(a, Enum)) for a in args)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _unknown(name: str, known, what: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
    return f"unknown {what}{hint}"


def _describe(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    return {
        str: "a string", int: "an integer", bool: "true or false", Path: "a path",
        IPv4Address: "an IPv4 address", IPv4Network: "an IPv4 network in CIDR form",
        IPv6Address: "an IPv6 address", IPv6Network: "an IPv6 network in CIDR form",
    }.get(tp, str(tp))


def _convert(raw: Any, tp: Any, parse=None) -> Any:
    """Turn a YAML value into the field's type, or raise with what was expected."""
    if parse is not None:
        return parse(raw)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None:
            return None
        return _convert(raw, args[0])
    if origin is tuple:
        (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        if isinstance(raw, str | int):
            raw = [raw]
        if not isinstance(raw, list):
            raise ValueError(f"expected a list of {_describe(item)}")
        return tuple(_convert(x, item) for x in raw)
    if tp is bool:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {raw!r}")
        return raw
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise ValueError(f"expected {_describe(tp)}, got {raw!r}")
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(str(raw))
        except ValueError:
            raise ValueError(f"{raw!r} is not {_describe(tp)}") from None
    if tp in (IPv4Address, IPv6Address):
        try:
            return tp(str(raw))
        except ValueError:
            raise ValueError(f"{raw!r} is not {_describe(tp)}") from None
    if tp in (IPv4Network, IPv6Network):
        try:
            return tp(str(raw), strict=True)
        except ValueError as err:
            raise ValueError(f"{raw!r} is not {_describe(tp)} ({err})") from None
    if tp is Path:
        return Path(str(raw))
    if tp is str:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {raw!r}")
        return raw
    raise TypeError(f"no conversion to {tp}")  # a field type netboot does not know: a bug


def _check_rules(config: Config, src: _Source) -> None:
    """Rules across keys: addresses in the subnet, the pool clear of fixed hosts."""
    server, dhcp, target = config.server, config.dhcp, config.target
    subnet = dhcp.subnet
    for key, port in (("server.http_port", server.http_port),
                      ("server.tftp_port", server.tftp_port),
                      ("target.portal_port", target.portal_port)):
        if not 1 <= port <= 65535:
            raise src.error(key, f"{port} is not a port number (expected 1-65535)")
    if not 0 <= config.admin.port <= 65535:
        raise src.error("admin.port", f"{config.admin.port} is not a port number "
                        "(expected 0-65535; 0: any free port)")
    if config.admin.enabled and (config.admin.address, config.admin.port) in (
            (server.address, server.http_port), (config.portal[0], target.portal_port)):
        raise src.error("admin.port", f"{config.admin.address}:{config.admin.port} is taken "
                        "by the boot server's own HTTP or iSCSI port")
    if not 0 <= server.tftp_workers <= 64:
        raise src.error("server.tftp_workers", "expected 0-64 (0: one per CPU)")
    if not 1 <= server.tftp_max_per_source <= 10000:
        raise src.error("server.tftp_max_per_source", "expected 1-10000")
    for key, value, most in (("server.http_threads", server.http_threads, 1024),
                             ("server.http_max_per_source", server.http_max_per_source, 1024),
                             ("server.http_request_timeout", server.http_request_timeout, 3600)):
        if not 1 <= value <= most:
            raise src.error(key, f"{value} is out of range (expected 1-{most})")
    if not 0 <= target.tgt_control_port <= 32767:  # tgtd keeps it in a C short
        raise src.error("target.tgt_control_port", "expected 0-32767 (0: tgtd's default)")
    if subnet.prefixlen > 30:
        raise src.error("dhcp.subnet", f"{subnet} is too small for a boot subnet "
                        "(expected a prefix of /30 or shorter)")
    if server.address not in subnet:
        raise src.error("server.address", f"{server.address} is not in dhcp.subnet {subnet}")
    if dhcp.router is not None and dhcp.router not in subnet:
        raise src.error("dhcp.router", f"{dhcp.router} is not in dhcp.subnet {subnet}")
    for key in ("range_start", "range_end"):
        value = getattr(dhcp, key)
        if value is not None and value not in subnet:
            raise src.error(f"dhcp.{key}", f"{value} is not in dhcp.subnet {subnet}")
        if value is not None and value in (subnet.network_address, subnet.broadcast_address):
            raise src.error(f"dhcp.{key}", f"{value} is the network or broadcast address")
    start, end = dhcp.dynamic_range
    if start > end:
        raise src.error("dhcp.range_start", f"range start {start} is after range end {end}")
    if dhcp.mode is not DhcpMode.PROXY:
        for what, addr in (("server.address", server.address), ("dhcp.router", dhcp.router)):
            if addr is not None and start <= addr <= end:
                raise src.error("dhcp.range_start" if dhcp.range_start else "dhcp.subnet",
                                f"the dynamic range {start}-{end} includes {what} {addr}")
    rbd = config.storage.rbd
    for key, value in (("pool", rbd.pool), ("client_id", rbd.client_id),
                       ("ceph_conf", str(rbd.ceph_conf))):
        # tgt's bs_rbd reads "conf=..;id=.." split at ';' out of a ','-joined request
        bad = sorted(set(value) & set(";,=" if key == "ceph_conf" else ";,=/@ "))
        if not value or bad:
            raise src.error(f"storage.rbd.{key}", f"{value!r} is empty or holds "
                            f"{' '.join(bad)}, which tgt's RBD options cannot carry")
    _check_failover(config, src)
    _check_dhcp6(config, src)
    if dhcp.lease_time < 60:
        raise src.error("dhcp.lease_time", f"{dhcp.lease_time} s is too short (at least 60)")
    if dhcp.unknown_rate < 1:
        raise src.error("dhcp.unknown_rate", "expected at least 1 request per second")
    if dhcp.unknown_max < 1:
        raise src.error("dhcp.unknown_max", "expected at least 1")
    if target.reconcile_interval < 1:
        raise src.error("target.reconcile_interval", "expected at least 1 second")
    try:
        validate_iqn(target.iqn_authority, with_label=False)
    except ValidationError as err:
        raise src.error("target.iqn_authority", str(err)) from None
    if config.boot.tokens and dhcp.mode is DhcpMode.OFF:
        raise src.error("boot.tokens", "tokens come in netboot's DHCP replies, and dhcp.mode "
                        "is off: set boot.tokens: false (private files go by address then)")
    if not 10 <= config.boot.window <= 3600:
        raise src.error("boot.window", f"{config.boot.window} s is out of range (10-3600)")
    if config.storage.default_lun_size < 1 << 20:
        raise src.error("storage.default_lun_size", "expected at least 1M")
    _check_inventory(config, src)


def _check_dhcp6(config: Config, src: _Source) -> None:
    """dhcp6: room for every host of dhcp.subnet (see netboot.config.Dhcp6Config), the
    server's address in it, lifetimes in order (RFC 8415 section 21.6)."""
    dhcp6 = config.dhcp6
    if dhcp6.subnet is None:
        if dhcp6.address is not None:
            raise src.error("dhcp6.address", "set dhcp6.subnet too, or remove it")
        return
    if config.dhcp.mode is not DhcpMode.OFF:
        raise src.error("dhcp6.subnet", "DHCPv6 serves an IPv6-only boot VLAN: set dhcp.mode: "
                        "off (clients there get every URL and the portal on IPv6)")
    hosts = config.dhcp.subnet.num_addresses
    if dhcp6.subnet.num_addresses < hosts:
        raise src.error("dhcp6.subnet", f"{dhcp6.subnet} has fewer addresses than "
                        f"dhcp.subnet {config.dhcp.subnet} (each client's host part is kept)")
    server = config.server_ipv6
    assert server is not None
    if server not in dhcp6.subnet:
        raise src.error("dhcp6.address", f"{server} is not in dhcp6.subnet {dhcp6.subnet}")
    offset = int(server) - int(dhcp6.subnet.network_address)
    if offset < hosts and server != config.ipv6_of(config.server.address):
        raise src.error("dhcp6.address", f"{server} is the IPv6 address of "
                        f"{config.dhcp.subnet.network_address + offset}, which a client may "
                        f"hold: use {config.ipv6_of(config.server.address)} (the one of "
                        "server.address) or one past the clients' host parts")
    if not 60 <= dhcp6.preferred_lifetime <= dhcp6.valid_lifetime:
        raise src.error("dhcp6.preferred_lifetime", "expected at least 60 s and at most "
                        "dhcp6.valid_lifetime")


def _check_inventory(config: Config, src: _Source) -> None:
    """inventory.url is a PostgreSQL URL without a password (those go in a file)."""
    url, password_file = config.inventory.url, config.inventory.password_file
    if url is None:
        if password_file is not None:
            raise src.error("inventory.password_file", "is for a PostgreSQL inventory: set "
                            "inventory.url too, or remove it")
        return
    if not url.startswith(POSTGRES_SCHEMES):
        raise src.error("inventory.url", "expected a PostgreSQL URL (postgresql://...); "
                        "without inventory.url the inventory is SQLite in storage.state_dir")
    parts = urlsplit(url)
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise src.error("inventory.url", "holds a password: put it in a file of its own "
                        "(mode 0600) named by inventory.password_file")


def _check_failover(config: Config, src: _Source) -> None:
    """target.failover: ranges always; when enabled, what a floating portal needs."""
    failover, key = config.target.failover, "target.failover"
    for name, value, low, high in (("virtual_router_id", failover.virtual_router_id, 1, 255),
                                   ("priority", failover.priority, 1, 254),
                                   ("advert_int", failover.advert_int, 1, 255),
                                   ("fence_seconds", failover.fence_seconds, 60, 10 ** 8)):
        if value is not None and not low <= value <= high:
            raise src.error(f"{key}.{name}", f"{value} is out of range (expected {low}-{high})")
    if failover.vrrp_interface is not None and not 1 <= len(failover.vrrp_interface) <= 15:
        raise src.error(f"{key}.vrrp_interface", "expected an interface name (1-15 characters)")
    if not failover.enabled:
        return
    for name in ("virtual_router_id", "peer_storage_address"):
        if getattr(failover, name) is None:
            raise src.error(f"{key}.{name}", "is required when target.failover.enabled is true")
    portal = config.target.portal_address
    if portal is None or portal == config.server.address:
        raise src.error("target.portal_address", "a floating portal needs an address of its "
                        "own (not server.address): the servers hand it to each other")
    if portal not in config.dhcp.subnet:
        raise src.error("target.portal_address", f"{portal} is not in dhcp.subnet "
                        f"{config.dhcp.subnet}: the floating portal lives on the boot VLAN")
    if config.storage.backend is not StorageKind.RBD:
        raise src.error(f"{key}.enabled", "failover needs storage.backend: rbd (both servers "
                        "export the same images; the peer is fenced in Ceph)")
    if not config.target.manage:
        raise src.error(f"{key}.enabled", "failover needs target.manage: true (netboot runs "
                        "the tgtd that serves the floating portal)")
