"""Which services ``netboot serve`` runs for a config: the one module that knows them all."""

from __future__ import annotations

from enum import Enum

from netboot.admin.service import AdminService
from netboot.boot.catalog import Catalog
from netboot.config import Config, DhcpMode
from netboot.counters import CounterPublisher, counted, snapshot_dir
from netboot.dhcp.service import DhcpService
from netboot.dhcp6.service import Dhcp6Service
from netboot.host.users import ServiceUser
from netboot.http.server import HttpLimits, HttpServer
from netboot.inventory.pool import InventoryPool
from netboot.inventory.recorder import StageRecorder
from netboot.inventory.store import InventoryFactory
from netboot.provisioning.windows import WindowPreparer
from netboot.serve.network import NetworkProcess
from netboot.serve.presence import Presence
from netboot.serve.service import Service
from netboot.target.failover.portal import fenced
from netboot.target.failover.service import PortalService
from netboot.target.service import TargetService
from netboot.tftp.server import TftpServer
from netboot.tftp.workers import TftpWorkers, worker_count


def boot_file_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """TFTP and HTTP over one catalog, and the stage writer, in start order; ``run`` stops
    them in reverse, so the pool closes last."""
    pool = InventoryPool(open_inventory)
    stages = StageRecorder(pool)
    catalog = Catalog(config, pool)
    address, port = config.boot_address, config.server.tftp_port
    workers = worker_count(config)
    tftp: Service = (TftpServer(address, port, catalog, stages,
                                max_per_source=config.server.tftp_max_per_source)
                     if workers == 1 else TftpWorkers(config, address, port, workers))
    return [pool, stages, tftp, HttpServer(address, config.server.http_port, catalog, stages,
                                            HttpLimits.of(config.server))]


class Part(Enum):
    """Which services one process of ``netboot serve`` runs."""

    WHOLE = "whole"  # everything in one root process (server.user: root)
    ROOT = "root"  # the target, window preparation, and the network part as a child
    NETWORK = "network"  # DHCP(v6), router advertisements, TFTP and HTTP, without root


def network_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """What reads the boot network's packets, in start order."""
    services = boot_file_services(config, open_inventory)
    if config.dhcp.mode is not DhcpMode.OFF:
        services.append(DhcpService(config, open_inventory))
    if config.dhcp6.enabled:
        services.append(Dhcp6Service(config, open_inventory))
    if config.dhcp.router_advertisements:
        from netboot.dhcp.ra import RouterAdvertiser  # slow on purpose: scapy loads only here

        dhcp6 = config.dhcp6
        services.append(RouterAdvertiser(config.server.interface, dhcp6.subnet,
                                         (dhcp6.preferred_lifetime, dhcp6.valid_lifetime)))
    return services


def root_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """What needs root: the floating portal (target.failover), tgtd kept in step, and new
    boot windows prepared on it (their client's sessions closed and CHAP renewed before the
    window's files are served)."""
    if not config.target.manage:
        return []
    if not config.target.failover.enabled:
        services: list[Service] = [TargetService(config, open_inventory)]
    else:  # keepalived prepared and running before tgtd starts (on the floating address)
        services = [PortalService(config),
                    TargetService(config, open_inventory, may_start=lambda: not fenced(config))]
    if config.tokens:
        services.append(WindowPreparer(config, open_inventory))
    return services


def with_counters(config: Config, services: list[Service]) -> list[Service]:
    """``services`` and, after them, the publisher of what they count (so it stops first
    and writes its last snapshot while they still run); see netboot.counters."""
    sources = counted(services)
    if not sources:
        return services
    return [*services, CounterPublisher(snapshot_dir(config.storage.state_dir), sources)]


def admin_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """The admin interface, last: it shows what the others do."""
    return [AdminService(config, open_inventory)] if config.admin.enabled else []


def build_services(config: Config, open_inventory: InventoryFactory, part: Part = Part.WHOLE,
                   user: ServiceUser | None = None) -> list[Service]:
    """The services ``config`` asks for in ``part``, in start order (``user``: the network
    part's, for :attr:`Part.ROOT`)."""
    if part is Part.NETWORK:
        return with_counters(config, network_services(config, open_inventory))
    if part is Part.ROOT:
        assert user is not None
        return [*with_counters(config, [Presence(config, open_inventory),
                                        *root_services(config, open_inventory)]),
                NetworkProcess(config, user), *admin_services(config, open_inventory)]
    return [*with_counters(config, [Presence(config, open_inventory),
                                    *network_services(config, open_inventory),
                                    *root_services(config, open_inventory)]),
            *admin_services(config, open_inventory)]
