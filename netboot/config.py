"""netboot's configuration: one frozen, typed dataclass per subsystem.

Every default lives here, on the field or in a property that derives it from
other fields, so a minimal file is three lines (interface, address, subnet).
Loading and validation live in :mod:`netboot.configfile`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from netboot.arch import Arch
from netboot.size import parse_size

DEFAULT_CONFIG_PATH = Path("/etc/netboot/netboot.yaml")


class DhcpMode(StrEnum):
    """How netboot takes part in DHCP on the boot VLAN."""

    FULL = "full"  # netboot assigns addresses and boot information
    PROXY = "proxy"  # another server assigns addresses; netboot answers PXE only
    OFF = "off"  # no DHCP at all (addresses and boot options come from elsewhere)


class UnknownPolicy(StrEnum):
    """What an unregistered machine gets."""

    IGNORE = "ignore"  # no reply; logged once and listed by `client list --unknown`
    BOOT = "boot"  # an address from the dynamic range and a "not registered" script


class Loader(StrEnum):
    """The boot loader a BIOS/UEFI PXE ROM is given."""

    IPXE = "ipxe"
    PXELINUX = "pxelinux"  # BIOS machines; UEFI ones keep iPXE
    # UEFI x86-64 machines with Secure Boot: Debian's signed shim, network GRUB and kernel;
    # BIOS machines keep iPXE
    GRUB_SECUREBOOT = "grub-secureboot"


class TargetKind(StrEnum):
    """Which iSCSI target implementation serves the LUNs (``target.backend``)."""

    TGT = "tgt"


class ChapRotation(StrEnum):
    """When a client's CHAP secrets are replaced (target.rotate_chap)."""

    PER_BOOT = "per-boot"  # each boot window: a secret stolen earlier dies at the next boot
    NEVER = "never"


class OnFail(StrEnum):
    """What the initramfs does when it cannot reach its root."""

    SHELL = "shell"
    REBOOT = "reboot"
    HALT = "halt"


SERVICE_USER = "netboot"  # the system user `make setup` creates for serve's network part
ROOT_USER = "root"  # server.user: everything in one root process


@dataclass(frozen=True)
class ServerConfig:
    """The serving side: which interface, which address, where files live."""

    address: IPv4Address
    interface: str = "eth0"
    http_port: int = 8080
    tftp_port: int = 69
    # Debian's boot loaders (`python -m netboot.boot.loaders DIR`); default: <state_dir>/tftproot
    tftp_root: Path | None = None
    # TFTP server processes sharing the port (SO_REUSEPORT); 0: one per CPU, at most 8.
    tftp_workers: int = 0
    # TFTP transfers one client address may have in flight (in each worker process);
    # a further request gets error 0. A booting machine needs one or two.
    tftp_max_per_source: int = 8
    # HTTP handler threads; past them new connections wait in the listen backlog.
    http_threads: int = 64
    # Open HTTP connections one address may hold; past them it gets 503.
    http_max_per_source: int = 16
    # Seconds from waiting for a request to having its headers (slowloris defence).
    http_request_timeout: int = 30
    # the user DHCP, TFTP and HTTP run as (netboot.host.users); root: one root process
    user: str = SERVICE_USER
    # this server's name among those sharing an inventory (netboot status); default: hostname
    name: str | None = None


@dataclass(frozen=True)
class DhcpConfig:
    """DHCP: the boot subnet, the pool for unknown machines and the options sent."""

    subnet: IPv4Network
    mode: DhcpMode = DhcpMode.FULL
    range_start: IPv4Address | None = None
    range_end: IPv4Address | None = None
    router: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    domain: str | None = None
    lease_time: int = 3600
    unknown: UnknownPolicy = UnknownPolicy.IGNORE
    router_advertisements: bool = True
    unknown_rate: int = 50  # requests per second answered from all unregistered MACs
    unknown_max: int = 10000  # unregistered machines remembered (the oldest are forgotten)

    @property
    def dynamic_range(self) -> tuple[IPv4Address, IPv4Address]:
        """The pool for unknown machines: as configured, or the subnet's top quarter."""
        if self.range_start is not None and self.range_end is not None:
            return self.range_start, self.range_end
        first = int(self.subnet.network_address) + 1
        last = int(self.subnet.broadcast_address) - 1
        start = max(first, last - (last - first + 1) // 4 + 1)
        return (
            self.range_start or IPv4Address(start),
            self.range_end or IPv4Address(last),
        )

    def in_dynamic_range(self, ip: IPv4Address) -> bool:
        start, end = self.dynamic_range
        return start <= ip <= end


@dataclass(frozen=True)
class Dhcp6Config:
    """DHCPv6 (RFC 8415) on the boot interface, for an IPv6 boot VLAN: off until ``subnet``
    is set. A registered client's IPv6 address is fixed: ``subnet`` plus the host part of
    its inventory (IPv4) address, so 198.18.0.10 in dhcp.subnet 198.18.0.0/24 is
    ``<subnet>::a``; the inventory keeps one address per client and both families name
    the same machine. Router advertisements (dhcp.router_advertisements) then carry the
    M flag: addresses come from DHCPv6, not from SLAAC."""

    subnet: IPv6Network | None = None
    address: IPv6Address | None = None  # this server's on the boot VLAN; default: see below
    preferred_lifetime: int = 3600
    valid_lifetime: int = 7200

    @property
    def enabled(self) -> bool:
        return self.subnet is not None



@dataclass(frozen=True)
class FailoverConfig:
    """A floating portal shared with a second server (``target.failover``): keepalived (VRRP)
    elects the server that holds ``target.portal_address``; the one taking it over first
    fences the other in Ceph (:mod:`netboot.target.failover`)."""

    enabled: bool = False
    vrrp_interface: str | None = None  # default: server.interface
    virtual_router_id: int | None = None  # 1-255, the same on both servers, unique on the VLAN
    priority: int = 100  # 1-254: who wins when both start together (nopreempt: no take-back)
    advert_int: int = 1  # seconds between VRRP adverts; the peer is dead after ~3 of them
    peer_storage_address: IPv4Address | None = None  # the other server's, as Ceph sees it
    fence_seconds: int = 86400  # how long the peer stays blocklisted unless it rejoins first


@dataclass(frozen=True)
class TargetConfig:
    """The iSCSI target: backend, portal and naming."""

    backend: TargetKind = TargetKind.TGT
    manage: bool = True  # false: the LUNs are served by hand or elsewhere; netboot only boots
    portal_address: IPv4Address | None = None  # default: server.address
    portal_port: int = 3260
    iqn_authority: str = "iqn.2026-11.org.example"
    mutual_chap: bool = True
    discovery_auth: bool = True
    tgt_control_port: int = 0  # tgtd -C N: a control socket of netboot's own
    reconcile_interval: int = 30
    # per-boot: a boot window drops the client's sessions and renews its secrets (managed
    # targets only: a target netboot does not manage keeps the secrets it was given)
    rotate_chap: ChapRotation = ChapRotation.PER_BOOT
    failover: FailoverConfig = field(default_factory=FailoverConfig)


class StorageKind(StrEnum):
    """Where golden images and client roots live (``storage.backend``)."""

    FILE = "file"  # files under state_dir: reflink or sparse copies
    RBD = "rbd"  # a Ceph pool: a snapshot per image version, a thin clone per client


@dataclass(frozen=True)
class RbdConfig:
    """The Ceph pool and identity netboot (and the tgtd it runs) use for RBD images."""

    pool: str = "netboot"
    ceph_conf: Path = Path("/etc/ceph/ceph.conf")  # mon_host and the client's keyring
    client_id: str = "netboot"  # client.<id>: needs `profile rbd` on the pool


@dataclass(frozen=True)
class StorageConfig:
    """Where state, golden images and client LUNs live."""

    backend: StorageKind = StorageKind.FILE
    rbd: RbdConfig = field(default_factory=RbdConfig)
    state_dir: Path = Path("/var/lib/netboot")
    images_dir: Path | None = None
    lun_dir: Path | None = None
    cache_dir: Path | None = None
    default_lun_size: int = field(default=parse_size("4G"), metadata={"parse": parse_size})

    @property
    def images(self) -> Path:
        return self.images_dir or self.state_dir / "images"

    @property
    def luns(self) -> Path:
        return self.lun_dir or self.state_dir / "luns"

    @property
    def cache(self) -> Path:
        return self.cache_dir or self.state_dir / "cache"

    @property
    def database(self) -> Path:
        return self.state_dir / "inventory.sqlite3"


POSTGRES_SCHEMES = ("postgresql://", "postgres://")  # libpq's URI forms (inventory.url)


@dataclass(frozen=True)
class InventoryConfig:
    """Where the client inventory lives: SQLite in the state dir (the default, one server),
    or a PostgreSQL database that several servers share."""

    url: str | None = None  # postgresql://[user@]host[:port]/dbname[?...]; libpq's URI
    # a file holding the PostgreSQL password alone (0600 or 0640: serve gives server.user's
    # group read); never in the URL, argv or the environment
    password_file: Path | None = None


@dataclass(frozen=True)
class BootConfig:
    """What clients boot: loader, kernel, initramfs and kernel arguments."""

    loader: Loader = Loader.IPXE
    kernel_flavour: str = "cloud-amd64"
    kernel: Path | None = None  # default: <state_dir>/kernel/vmlinuz
    initramfs: Path | None = None  # default: <state_dir>/initramfs/base.img
    kernel_args: str = ""
    onfail: OnFail = OnFail.REBOOT
    extra_modules: tuple[str, ...] = ()
    # a client's private files only with its boot's single-use tokens, which netboot's DHCP
    # hands out (default: on unless dhcp.mode is off); false: to the client's address
    tokens: bool | None = None
    window: int = 120  # seconds a boot window stays open for the files of one boot


ADMIN_PORT = 9180  # the admin interface's port (metrics, page, API); IANA-unassigned
LOOPBACK = IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class AdminConfig:
    """The admin interface: ``/metrics``, the fleet page and the JSON API
    (:mod:`netboot.admin`). On loopback by default, never on the boot VLAN unless set so;
    a request from any other address needs the bearer token in ``token_file``."""

    enabled: bool = True
    address: IPv4Address = LOOPBACK
    port: int = ADMIN_PORT  # 0: any free port (logged at start)
    token_file: Path | None = None  # default: <state_dir>/admin.token, made 0600 by serve


@dataclass(frozen=True)
class Config:
    """The whole effective configuration, as loaded from one file."""

    server: ServerConfig
    dhcp: DhcpConfig
    dhcp6: Dhcp6Config = field(default_factory=Dhcp6Config)
    target: TargetConfig = field(default_factory=TargetConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    boot: BootConfig = field(default_factory=BootConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    source: Path | None = field(default=None, compare=False)

    @property
    def server_name(self) -> str:
        """This server's name in the inventory's ``servers`` table."""
        return self.server.name or socket.gethostname()

    @property
    def portal(self) -> tuple[IPv4Address | IPv6Address, int]:
        """The iSCSI portal clients log in to (on an IPv6-only boot VLAN, the server's IPv6
        address unless target.portal_address is set)."""
        return self.target.portal_address or self.boot_address, self.target.portal_port

    @property
    def tftp_root_path(self) -> Path:
        return self.server.tftp_root or self.storage.state_dir / "tftproot"

    @property
    def kernel_path(self) -> Path:
        return self.boot.kernel or self.storage.state_dir / "kernel" / "vmlinuz"

    @property
    def initramfs_path(self) -> Path:
        return self.boot.initramfs or self.storage.state_dir / "initramfs" / "base.img"

    def kernel_file(self, arch: Arch) -> Path:
        """The kernel served to ``arch``'s clients: amd64's is ``kernel_path``, another
        architecture's in a directory of its own (``<state_dir>/kernel/arm64/vmlinuz``)."""
        if arch is Arch.AMD64:
            return self.kernel_path
        return self.storage.state_dir / "kernel" / arch.value / "vmlinuz"

    def initramfs_file(self, arch: Arch) -> Path:
        """The base initramfs of ``arch``: amd64's is ``initramfs_path``, another
        architecture's ``<state_dir>/initramfs/<arch>/base.img``."""
        if arch is Arch.AMD64:
            return self.initramfs_path
        return self.storage.state_dir / "initramfs" / arch.value / "base.img"

    @property
    def admin_token_path(self) -> Path:
        return self.admin.token_file or self.storage.state_dir / "admin.token"

    @property
    def tokens(self) -> bool:
        """Whether private files need a boot token (see :mod:`netboot.inventory.windows`)."""
        if self.boot.tokens is not None:
            return self.boot.tokens
        return self.dhcp.mode is not DhcpMode.OFF

    @property
    def vrrp_interface(self) -> str:
        """The interface VRRP runs on and the floating portal address is added to."""
        return self.target.failover.vrrp_interface or self.server.interface

    @property
    def server_ipv6(self) -> IPv6Address | None:
        """This server's IPv6 address on the boot VLAN: dhcp6.address, or the one its IPv4
        address maps to (see :class:`Dhcp6Config`); None without DHCPv6."""
        return self.dhcp6.address or self.ipv6_of(self.server.address)

    @property
    def boot_address(self) -> IPv4Address | IPv6Address:
        """The address clients fetch boot files from and report to: the IPv6 one on an
        IPv6-only boot VLAN (:attr:`ipv6_only`), else server.address."""
        return self.server_ipv6 if self.ipv6_only and self.server_ipv6 else self.server.address

    def ipv6_of(self, ip: IPv4Address) -> IPv6Address | None:
        """A client's fixed IPv6 address (see :class:`Dhcp6Config`), or None without DHCPv6."""
        if self.dhcp6.subnet is None:
            return None
        return self.dhcp6.subnet.network_address + (int(ip) - int(self.dhcp.subnet.network_address))

    @property
    def ipv6_only(self) -> bool:
        """An IPv6-only boot VLAN: DHCPv6 on, DHCPv4 off. Clients are then given the server's
        IPv6 address in every URL and the portal."""
        return self.dhcp6.enabled and self.dhcp.mode is DhcpMode.OFF

    def reserved_addresses(self) -> set[IPv4Address]:
        """Addresses no client may be given: the server's, the router's, the portal's."""
        taken = {self.server.address, self.portal[0]}
        if self.dhcp.router is not None:
            taken.add(self.dhcp.router)
        return taken


SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "dhcp": DhcpConfig,
    "dhcp6": Dhcp6Config,
    "target": TargetConfig,
    "storage": StorageConfig,
    "boot": BootConfig,
    "inventory": InventoryConfig,
    "admin": AdminConfig,
}


def first_host(subnet: IPv4Network) -> IPv4Address:
    """The conventional server address of a subnet: its first host."""
    return next(iter(subnet.hosts())) if subnet.num_addresses > 2 else subnet.network_address




def _plain(value: object) -> object:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, IPv4Address | IPv4Network | IPv6Address | IPv6Network | Path):
        return str(value)
    return value


def effective_config(config: Config) -> dict[str, dict[str, object]]:
    """Every key with the value in force, derived defaults filled in (``config show``)."""
    out: dict[str, dict[str, object]] = {}
    for name in SECTIONS:
        section = getattr(config, name)
        out[name] = {f.name: _plain(getattr(section, f.name)) for f in fields(section)}
    start, end = config.dhcp.dynamic_range
    out["server"]["tftp_root"] = str(config.tftp_root_path)
    out["dhcp"].update(range_start=str(start), range_end=str(end))
    out["target"]["portal_address"] = str(config.portal[0])
    server6 = config.server_ipv6
    out["dhcp6"]["address"] = str(server6) if server6 is not None else None
    out["target"]["failover"]["vrrp_interface"] = config.vrrp_interface  # type: ignore[index]
    out["storage"].update(images_dir=str(config.storage.images), lun_dir=str(config.storage.luns),
                          cache_dir=str(config.storage.cache))
    out["boot"].update(kernel=str(config.kernel_path), initramfs=str(config.initramfs_path),
                       tokens=config.tokens)
    out["admin"]["token_file"] = str(config.admin_token_path)
    return out
