"""The DHCP server's whole judgement: one request in, at most one reply out, no I/O.

:func:`decide` reads the config, the registered clients and the lease table,
and returns a :class:`Decision`: the reply (or None), the lease changes the
reply implies, and what to log. The socket loop applies the changes and sends
the reply; nothing here touches a socket, a clock or the database, so every
rule below is unit-tested on bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

from netboot.boot import urls
from netboot.config import Config, DhcpConfig, DhcpMode, UnknownPolicy
from netboot.dhcp.boot import BootChoice, choose_boot, no_loader, opens_window, with_boot
from netboot.dhcp.leases import Decline, Grant, LeaseChange, LeaseTable, Release
from netboot.dhcp.modifiers import (
    with_broadcast,
    with_broadcast_address,
    with_client_ip,
    with_destination,
    with_dns,
    with_domain_name,
    with_hostname,
    with_lease_time,
    with_message,
    with_message_type,
    with_netmask,
    with_option,
    with_router,
    with_server_id,
    with_your_ip,
    without_option,
)
from netboot.dhcp.options import (
    CLIENT_PORT,
    HTTP_VENDOR_CLASS,
    PXE_PORT,
    PXE_VENDOR_CLASS,
    SERVER_PORT,
    IpxeOption,
    MessageType,
    Option,
)
from netboot.dhcp.packet import (
    BROADCAST,
    BROADCAST_FLAG,
    ZERO,
    Modifier,
    Reply,
    Request,
    reply_from_request,
)
from netboot.inventory.clients import Client
from netboot.inventory.stages import Stage

OFFER_HOLD = 60.0  # seconds an offered dynamic address is kept for the client that was offered it
DECLINE_HOLD = 600.0  # seconds a declined address stays out of the pool
# Option 175 for iPXE in full mode: no ProxyDHCP will come, do not wait ~3 s for one.
IPXE_NO_PXEDHCP = bytes((IpxeOption.NO_PXEDHCP, 1, 1))


class ClientView(Protocol):
    """The registered clients, as :func:`decide` needs them."""

    def find(self, mac: str) -> Client | None: ...

    def owner(self, ip: IPv4Address) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """A reply (or None) and what it implies. ``note`` is the log line's text."""

    reply: Reply | None
    note: str
    changes: tuple[LeaseChange, ...] = ()
    stage: Stage | None = None  # boot stage to record for a registered client
    unknown: bool = False  # an unregistered machine asked: note it in the inventory
    warning: bool = False  # an operator should see this line


def decide(request: Request, config: Config, leases: LeaseTable, clients: ClientView,
           now: float, token: str | None = None) -> Decision:
    """What netboot answers to ``request`` (see the module docstring); ``token``: the script
    token of the client's boot window, for the iPXE script URL (see :func:`opens_window`)."""
    dhcp = config.dhcp
    kind = request.message_type.name
    if dhcp.mode is DhcpMode.OFF:
        return Decision(None, "dhcp.mode is off")
    if request.giaddr != ZERO and request.giaddr not in dhcp.subnet:
        return Decision(None, f"{kind} relayed by {request.giaddr}, not on {dhcp.subnet}: ignored")
    client = clients.find(request.mac)
    if dhcp.mode is DhcpMode.PROXY:
        return _proxy(request, config, client, token)
    server_id = request.server_id
    if server_id is not None and server_id != config.server.address:
        return Decision(None, f"{kind} for server {server_id}: not for us")
    if client is None and dhcp.unknown is UnknownPolicy.IGNORE:
        return Decision(None, f"{kind} from an unregistered machine: ignored (dhcp.unknown is"
                        " ignore; `netboot client add` registers it)", unknown=True)
    if request.message_type is MessageType.DISCOVER:
        return _discover(request, config, client, leases, clients, now, token)
    if request.message_type is MessageType.REQUEST:
        return _request(request, config, client, leases, clients, now, token)
    if request.message_type is MessageType.DECLINE:
        return _decline(request, config, client, now)
    if request.message_type is MessageType.RELEASE:
        if client is not None:
            return Decision(None, f"release of fixed address {request.ciaddr}")
        return Decision(None, f"release {request.ciaddr}",
                        changes=(Release(request.mac, request.ciaddr),))
    return _inform(request, config, client, token)


def _discover(request: Request, config: Config, client: Client | None, leases: LeaseTable,
              clients: ClientView, now: float, token: str | None) -> Decision:
    ip = client.ip if client else _dynamic(request, config, leases, clients, now,
                                            request.requested_address)
    if ip is None:
        start, end = config.dhcp.dynamic_range
        return Decision(None, f"no offer: dynamic range {start}-{end} is exhausted "
                        f"({len(leases)} leases, {leases.declined_count(now)} declined)",
                        warning=True)
    boot = choose_boot(request, config, token)
    if boot is None and opens_window(request):  # a boot netboot has no loader for
        return Decision(None, f"no offer: {no_loader(request)}", warning=True)
    reply = _answer(request, config, MessageType.OFFER, with_your_ip(ip),
                    *_configured(config.dhcp, client), with_lease_time(config.dhcp.lease_time),
                    *_full_boot(boot, config))
    changes: tuple[LeaseChange, ...] = ()
    own = leases.of(request.mac)
    if client is None and not (own and own.ip == ip and own.expires > now):
        changes = (Grant(request.mac, ip, now + OFFER_HOLD, persist=False),)
    return Decision(reply, f"offer {ip}{_boot_note(boot)}", changes)


def _request(request: Request, config: Config, client: Client | None, leases: LeaseTable,
             clients: ClientView, now: float, token: str | None) -> Decision:
    """RFC 2131 section 4.3.2: SELECTING (server id), INIT-REBOOT (option 50, no server id),
    RENEWING/REBINDING (ciaddr only)."""
    wanted = request.requested_address
    init_reboot = request.server_id is None and wanted is not None
    if wanted is None:
        if request.server_id is not None or request.ciaddr == ZERO:
            return Decision(None, "REQUEST with neither a requested address nor ciaddr: ignored")
        wanted = request.ciaddr
    if wanted not in config.dhcp.subnet:
        return _nak(request, config, f"{wanted} is not on {config.dhcp.subnet}")
    if client is not None:
        ip: IPv4Address | None = client.ip
    else:
        if init_reboot and leases.of(request.mac) is None:
            # RFC 2131 4.3.2: no record of this client -> remain silent (another server may).
            return Decision(None, f"INIT-REBOOT for {wanted} with no lease here: silent")
        ip = _dynamic(request, config, leases, clients, now, wanted)
    if ip != wanted:
        return _nak(request, config, f"asked for {wanted}, but its address is {ip or 'none'}")
    boot = choose_boot(request, config, token)
    reply = _answer(request, config, MessageType.ACK, with_client_ip(request.ciaddr),
                    with_your_ip(ip), *_configured(config.dhcp, client),
                    with_lease_time(config.dhcp.lease_time), *_full_boot(boot, config))
    if client is not None:
        # A renewal (ciaddr set) is a running machine, not a boot: its stage stays as it is.
        stage = Stage.DHCP if request.ciaddr == ZERO else None
        return Decision(reply, f"ack {ip}{_boot_note(boot)}", stage=stage)
    grant = Grant(request.mac, ip, now + config.dhcp.lease_time)
    return Decision(reply, f"ack {ip} until +{config.dhcp.lease_time}s{_boot_note(boot)}",
                    (grant,))


def _decline(request: Request, config: Config, client: Client | None, now: float) -> Decision:
    ip = request.requested_address
    if ip is None:
        return Decision(None, "DECLINE without a requested address: ignored")
    if client is not None and ip == client.ip:
        return Decision(None, f"client reports its fixed address {ip} in use by another "
                        "machine: find the duplicate", warning=True)
    if not config.dhcp.in_dynamic_range(ip):
        return Decision(None, f"DECLINE of {ip}, not a dynamic address: ignored")
    return Decision(None, f"declined {ip}: kept out of the pool for {DECLINE_HOLD:.0f}s",
                    changes=(Decline(request.mac, ip, now + DECLINE_HOLD),), warning=True)


def _inform(request: Request, config: Config, client: Client | None,
            token: str | None) -> Decision:
    """RFC 2131 section 4.3.5: configuration (here: boot information) but no address."""
    boot = choose_boot(request, config, token)
    reply = _answer(request, config, MessageType.ACK, with_client_ip(request.ciaddr),
                    *_configured(config.dhcp, client), *_full_boot(boot, config))
    return Decision(reply, f"inform ack{_boot_note(boot)}")


def _proxy(request: Request, config: Config, client: Client | None,
           token: str | None) -> Decision:
    """PXE proxyDHCP (PXE 2.1 section 2.2.5): boot information only, never an address;
    OFFER on port 67 to a DISCOVER, ACK on port 4011 to a REQUEST."""
    kind = request.message_type.name
    vendor = request.vendor_class
    if not (vendor.startswith(PXE_VENDOR_CLASS) or vendor.startswith(HTTP_VENDOR_CLASS)):
        return Decision(None, f"{kind} from a non-PXE client: proxy mode answers PXE only")
    if client is None and config.dhcp.unknown is UnknownPolicy.IGNORE:
        return Decision(None, f"{kind} from an unregistered machine: ignored", unknown=True)
    if request.local_port == SERVER_PORT and request.message_type is MessageType.DISCOVER:
        message_type = MessageType.OFFER
    elif request.local_port == PXE_PORT and request.message_type in (MessageType.REQUEST,
                                                                     MessageType.INFORM):
        message_type = MessageType.ACK
    else:
        return Decision(None, f"{kind} on port {request.local_port}: the DHCP server's to answer")
    boot = choose_boot(request, config, token)
    if boot is None:
        return Decision(None, no_loader(request), warning=True)
    reply = _answer(request, config, message_type, with_client_ip(request.ciaddr),
                    with_boot(boot, config.server.address))
    return Decision(reply, f"proxy {message_type.name.lower()}{_boot_note(boot)}")


def _dynamic(request: Request, config: Config, leases: LeaseTable, clients: ClientView,
             now: float, wanted: IPv4Address | None) -> IPv4Address | None:
    """An address from the dynamic range for an unregistered machine: the one it holds,
    else the one it asks for, else a never-used one, else the longest-expired one."""
    start, end = config.dhcp.dynamic_range
    reserved = config.reserved_addresses()
    mac = request.mac

    def usable(ip: IPv4Address) -> bool:
        return (start <= ip <= end and ip not in reserved and clients.owner(ip) is None
                and leases.free_for(ip, mac, now))

    own = leases.of(mac)
    if own is not None and usable(own.ip):
        return own.ip
    if wanted is not None and usable(wanted):
        return wanted
    oldest = None
    for number in range(int(start), int(end) + 1):
        ip = IPv4Address(number)
        if not usable(ip):
            continue
        lease = leases.at(ip)
        if lease is None:
            return ip
        if oldest is None or lease.expires < oldest.expires:
            oldest = lease
    return oldest.ip if oldest else None


def _answer(request: Request, config: Config, message_type: MessageType,
            *modifiers: Modifier) -> Reply:
    """A reply of ``message_type`` from this server to where RFC 2131 says it goes."""
    reply = reply_from_request(request, with_message_type(message_type),
                               with_server_id(config.server.address), *modifiers)
    return with_destination(*_destination(request, reply))(reply)


def _configured(dhcp: DhcpConfig, client: Client | None) -> list[Modifier]:
    """The configured network options, and a registered client's host name."""
    modifiers = [with_netmask(dhcp.subnet)]
    if dhcp.router is not None:
        modifiers.append(with_router(dhcp.router))
    if dhcp.dns:
        modifiers.append(with_dns(dhcp.dns))
    if client is not None:
        modifiers.append(with_hostname(client.hostname))
    if dhcp.domain:
        modifiers.append(with_domain_name(dhcp.domain))
    modifiers.append(with_broadcast_address(dhcp.subnet))
    return modifiers


def _full_boot(boot: BootChoice | None, config: Config) -> list[Modifier]:
    """The boot information of a full-mode reply (none for an unknown architecture)."""
    if boot is None:
        return []
    modifiers = [with_boot(boot, config.server.address)]
    if boot.ipxe:  # the address comes with it: iPXE need not wait for a ProxyDHCP
        modifiers.append(with_option(Option.IPXE_ENCAPSULATED, IPXE_NO_PXEDHCP))
    return modifiers


def _nak(request: Request, config: Config, why: str) -> Decision:
    """RFC 2131 table 3: a NAK carries 53, 54, 56 and the client id; 82 is echoed. The
    relay must broadcast a NAK (RFC 2131 section 4.3.2), so a relayed one says so."""
    relayed = [with_broadcast()] if request.giaddr != ZERO else []
    reply = _answer(request, config, MessageType.NAK, without_option(Option.CLIENT_UUID),
                    with_message(why), *relayed)
    return Decision(reply, f"nak: {why}")


def _destination(request: Request, reply: Reply) -> tuple[tuple[str, int], bool]:
    """RFC 2131 section 4.1: to the relay if there is one; to a PXE client's own port for a
    4011 exchange; an INFORM without ``ciaddr`` back to where it came from (section 4.3.5);
    broadcast for a NAK and to a client that sets the broadcast bit; unicast to ``ciaddr``
    if the client has an address; else unicast to ``yiaddr`` at ``chaddr`` (the second
    value: the sender must not ask ARP), so an answer for one client is not broadcast
    to the whole VLAN."""
    if request.giaddr != ZERO:
        return (str(request.giaddr), SERVER_PORT), False
    if request.local_port == PXE_PORT:
        return request.source, False
    if request.message_type is MessageType.INFORM and request.ciaddr == ZERO:
        return request.source, False
    if reply.message_type is MessageType.NAK or request.flags & BROADCAST_FLAG:
        return (str(BROADCAST), CLIENT_PORT), False
    if request.ciaddr != ZERO:
        return (str(request.ciaddr), CLIENT_PORT), False
    if reply.yiaddr != ZERO:
        return (str(reply.yiaddr), CLIENT_PORT), True
    return (str(BROADCAST), CLIENT_PORT), False


def _boot_note(boot: BootChoice | None) -> str:
    if boot is None:
        return ", no boot file (no loader for its architecture)"
    arch = f" (arch {boot.arch})" if boot.arch is not None else ""
    return f", boot {urls.redact(boot.file)}{arch}"
