"""The services that serve boot files: TFTP and HTTP over one catalog, and the stage writer."""

from __future__ import annotations

from netboot.catalog import Catalog
from netboot.config import Config
from netboot.httpd import HttpServer
from netboot.pool import InventoryPool
from netboot.server import InventoryFactory, Service
from netboot.stages import StageRecorder
from netboot.tftp.server import TftpServer
from netboot.tftp.workers import TftpWorkers, worker_count


def boot_file_services(config: Config, open_inventory: InventoryFactory) -> list[Service]:
    """In start order; ``run`` stops them in reverse, so the pool closes last."""
    pool = InventoryPool(open_inventory)
    stages = StageRecorder(pool)
    catalog = Catalog(config, pool)
    address, port = config.server.address, config.server.tftp_port
    workers = worker_count(config)
    tftp: Service = (TftpServer(address, port, catalog, stages) if workers == 1
                     else TftpWorkers(config, address, port, workers))
    return [pool, stages, tftp, HttpServer(address, config.server.http_port, catalog, stages)]
