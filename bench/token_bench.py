"""What boot tokens cost the server per boot, beside the same boots without them, one run.

Each boot is what the server does for one iPXE client in the real code paths,
in process, on a real inventory on disk (WAL, synchronous=FULL, as serve runs
it): iPXE's DISCOVER and REQUEST through the DHCP engine, then the script and
the initrd part through the catalog, then /init's ``root`` report closing the
window. With tokens the exchange opens a window (and the script spends its
token, the part its own); without (``boot.tokens: false``) the files go by
address. Reported: server CPU (process time) and wall time per boot, both ways,
and the difference: what tokens add. The issue's bound is 1 ms of CPU per boot.

    .venv/bin/python bench/token_bench.py [--boots 500]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

from netboot.boot.catalog import Catalog
from netboot.configfile import parse_config
from netboot.dhcp.service import DhcpEngine
from netboot.inventory.pool import InventoryPool
from netboot.inventory.store import Inventory
from netboot.output import table
from netboot.provisioning.clients import add_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.dhcp_frames import decode, ipxe_bios, options  # the repo's

PART = re.compile(r":8080/(clients/\S+/client\.img)")  # the initrd part the script names
CONFIG = """\
server: {{address: 198.18.0.1, interface: nb0}}
dhcp: {{subnet: 198.18.0.0/20}}
target: {{manage: false}}
storage: {{state_dir: {state}}}
boot: {{tokens: {tokens}}}
"""


def mac_of(i: int) -> str:
    return f"52:54:00:00:{i >> 8:02x}:{i & 0xFF:02x}"


def run(boots: int, tokens: bool, work: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per boot for ``boots`` clients booting once each."""
    config = parse_config(CONFIG.format(state=work / ("on" if tokens else "off"),
                                        tokens=str(tokens).lower()), "<bench>")
    config.tftp_root_path.mkdir(parents=True)
    inventory = Inventory(config.storage.database)
    clients = [add_client(config, inventory, mac_of(i)).client for i in range(boots)]
    engine = DhcpEngine(config, inventory, time.time(), record_stage=lambda *_: None)
    pool = InventoryPool(lambda: Inventory(config.storage.database))
    catalog = Catalog(config, pool)
    cpu, wall = time.process_time(), time.perf_counter()
    for i, client in enumerate(clients):
        now = time.time()
        engine.handle(ipxe_bios(client.mac, xid=i), ("0.0.0.0", 68), 67, now)
        ack = engine.handle(ipxe_bios(client.mac, "request", xid=i, extra=[
            ("server_id", "198.18.0.1"), ("requested_addr", str(client.ip))]),
            ("0.0.0.0", 68), 67, now)
        assert ack is not None
        script = options(decode(ack[0]))[67].decode().split(":8080/", 1)[1]
        peer = IPv4Address(client.ip)
        rendered = catalog.open(script, peer)
        rendered.close()
        part = PART.search(rendered.source.data.decode())
        assert part is not None
        catalog.open(part[1], peer).close()
        if tokens:
            catalog.close_window(client.mac)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pool.stop()
    inventory.close()
    return cpu / boots, wall / boots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off = run(args.boots, False, Path(tmp))
        on = run(args.boots, True, Path(tmp))
    rows = [(name, f"{cpu * 1e3:.2f}", f"{wall * 1e3:.2f}")
            for name, (cpu, wall) in (("by address (boot.tokens: false)", off),
                                      ("with tokens", on),
                                      ("tokens add", (on[0] - off[0], on[1] - off[1])))]
    print(f"{args.boots} boots each way")
    print(table(("boot files", "CPU ms/boot", "wall ms/boot"), rows))


if __name__ == "__main__":
    main()
