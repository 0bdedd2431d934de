"""Which services ``netboot serve`` runs for a config: the one module that knows them all."""

from __future__ import annotations

from netboot.boot.catalog import Catalog
from netboot.config import Config, DhcpMode
from netboot.dhcp.service import DhcpService
from netboot.http.server import HttpLimits, HttpServer
from netboot.inventory.pool import InventoryPool
from netboot.inventory.recorder import StageRecorder
from netboot.inventory.store import InventoryFactory
from netboot.provisioning.windows import WindowPreparer
from netboot.serve.service import Service
from netboot.target.service import TargetService
from netboot.tftp.server import TftpServer
from netboot.tftp.workers import TftpWorkers, worker_count


def boot_file_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """TFTP and HTTP over one catalog, and the stage writer, in start order; ``run`` stops
    them in reverse, so the pool closes last."""
    pool = InventoryPool(open_inventory)
    stages = StageRecorder(pool)
    catalog = Catalog(config, pool)
    address, port = config.server.address, config.server.tftp_port
    workers = worker_count(config)
    tftp: Service = (TftpServer(address, port, catalog, stages,
                                max_per_source=config.server.tftp_max_per_source)
                     if workers == 1 else TftpWorkers(config, address, port, workers))
    return [pool, stages, tftp, HttpServer(address, config.server.http_port, catalog, stages,
                                            HttpLimits.of(config.server))]


def build_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """The services ``config`` asks for, in start order."""
    services = boot_file_services(config, open_inventory)
    # A new boot window drops the client's sessions and renews its CHAP first, on a target
    # netboot manages (started after the target service; DHCP only queues windows for it).
    preparer = (WindowPreparer(config, open_inventory)
                if config.tokens and config.target.manage else None)
    if config.dhcp.mode is not DhcpMode.OFF:
        services.append(DhcpService(config, open_inventory,
                                    preparer.submit if preparer is not None else None))
    if config.dhcp.router_advertisements:
        from netboot.dhcp.ra import RouterAdvertiser  # slow on purpose: scapy loads only here

        services.append(RouterAdvertiser(config.server.interface))
    if config.target.manage:
        services.append(TargetService(config, open_inventory))
    if preparer is not None:
        services.append(preparer)
    return services
