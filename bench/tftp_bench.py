#!/usr/bin/env python3
"""TFTP (and HTTP) throughput: netboot beside tftpd-hpa and dnsmasq, in one run.

Two network namespaces joined by a veth pair (198.18.0.0/15): every server
runs in the server namespace as its own process, serving the same 32 MiB
file; curl downloads it from the client namespace. Cases: one client at
blksize 512, 1468 and 8192, and 16 clients at once at blksize 1468; plus
netboot's HTTP for one and for 16 clients. Each download is checked by
sha256. Ports are fixed because each namespace is new and private to this run.

    sudo .venv/bin/python bench/tftp_bench.py [--size 32M] [--json]

Needs root, curl, tftpd-hpa (in.tftpd) and dnsmasq. Runtime is bounded:
every curl has a time limit, and a case that fails shows as "failed".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from netboot import iproute
from netboot.output import table
from netboot.size import format_size, parse_size

FILE = "bench.bin"
CURL_LIMIT = 120  # seconds for one download
TFTP_PORTS = {"netboot": 1069, "tftpd-hpa": 2069, "dnsmasq": 69}  # dnsmasq's is not settable
HTTP_PORT = 8080
CONCURRENT = 16
CONCURRENT_BLKSIZE = 1468


@dataclass
class Lab:
    server_ns: str
    client_ns: str
    server: str

    def client(self, argv: list[str]) -> list[str]:
        return iproute.in_netns(self.client_ns, argv)

    def serve(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(iproute.in_netns(self.server_ns, argv), **kwargs)


def make_lab() -> Lab:
    suffix = secrets.token_hex(3)
    lab = Lab(f"nbbs{suffix}", f"nbbc{suffix}", "")
    third = secrets.randbelow(512)
    prefix = f"198.{18 + third // 256}.{third % 256}"
    iproute.add_netns(lab.server_ns)
    iproute.add_netns(lab.client_ns)
    iproute.add_veth(f"nbbs{suffix}", f"nbbc{suffix}", netns=lab.server_ns,
                     peer_netns=lab.client_ns)
    iproute.set_address(f"nbbs{suffix}", IPv4Interface(f"{prefix}.1/24"), netns=lab.server_ns)
    iproute.set_address(f"nbbc{suffix}", IPv4Interface(f"{prefix}.2/24"), netns=lab.client_ns)
    lab.server = f"{prefix}.1"
    return lab


def remove_lab(lab: Lab) -> None:
    iproute.delete_netns(lab.server_ns)
    iproute.delete_netns(lab.client_ns)


def wait_port(lab: Lab, proto: str, port: int, deadline: float = 10.0) -> None:
    flag = "-ulnH" if proto == "udp" else "-tlnH"
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        out = subprocess.run(iproute.in_netns(lab.server_ns, ["ss", flag]), capture_output=True,
                             text=True, check=False).stdout
        if f":{port} " in out:
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {proto} port {port} in {lab.server_ns}")


def start_servers(lab: Lab, root: Path) -> list[subprocess.Popen]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        lab.serve([sys.executable, __file__, "--serve-netboot", str(root), lab.server,
                   str(TFTP_PORTS["netboot"]), str(HTTP_PORT)], **quiet),
        lab.serve(["in.tftpd", "--foreground", "--address",
                   f"{lab.server}:{TFTP_PORTS['tftpd-hpa']}", "--user", "root", "--secure",
                   str(root)], **quiet),
        lab.serve(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                   "--user=root", f"--pid-file={root.parent / 'dnsmasq.pid'}",
                   f"--listen-address={lab.server}", "--bind-interfaces", "--enable-tftp",
                   f"--tftp-root={root}", "--quiet-tftp"], **quiet),
    ]
    for port in TFTP_PORTS.values():
        wait_port(lab, "udp", port)
    wait_port(lab, "tcp", HTTP_PORT)
    return procs


def curl(lab: Lab, url: str, blksize: int | None, want: str) -> float:
    """Seconds one verified download took."""
    argv = ["curl", "-sS", "--max-time", str(CURL_LIMIT), "-o", "-", url]
    if blksize is not None:
        argv[1:1] = ["--tftp-blksize", str(blksize)]
    began = time.monotonic()
    proc = subprocess.run(lab.client(argv), capture_output=True, check=False)
    seconds = time.monotonic() - began
    if proc.returncode != 0 or hashlib.sha256(proc.stdout).hexdigest() != want:
        raise RuntimeError(f"{url}: curl exit {proc.returncode} {proc.stderr.decode()[:200]}")
    return seconds


def throughput(lab: Lab, url: str, blksize: int | None, clients: int, size: int,
               want: str) -> float | None:
    """MB/s over all clients (total bytes over the wall time), or None if any failed."""
    began = time.monotonic()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: curl(lab, url, blksize, want), range(clients)))
    except RuntimeError as err:
        print(f"  failed: {err}", file=sys.stderr)
        return None
    return size * clients / (time.monotonic() - began) / 1e6


def run(size: int, as_json: bool) -> int:
    lab = make_lab()
    work = Path(tempfile.mkdtemp(prefix="netboot-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        root = work / "root"
        root.mkdir()
        data = os.urandom(size)
        (root / FILE).write_bytes(data)
        want = hashlib.sha256(data).hexdigest()
        os.chmod(work, 0o755)
        os.chmod(root, 0o755)
        procs = start_servers(lab, root)
        cases = [(f"1 client, blksize {b}", b, 1) for b in (512, 1468, 8192)]
        cases.append((f"{CONCURRENT} clients, blksize {CONCURRENT_BLKSIZE}",
                      CONCURRENT_BLKSIZE, CONCURRENT))
        results: dict[str, dict[str, float | None]] = {}
        for label, blksize, clients in cases:
            results[label] = {}
            for name, port in TFTP_PORTS.items():
                url = f"tftp://{lab.server}:{port}/{FILE}"
                if not as_json:
                    print(f"  {label}: {name}...", file=sys.stderr)
                results[label][name] = throughput(lab, url, blksize, clients, size, want)
        http = f"http://{lab.server}:{HTTP_PORT}/{FILE}"
        for clients in (1, CONCURRENT):
            label = f"HTTP, {clients} client{'s' if clients > 1 else ''}"
            results[label] = {"netboot": throughput(lab, http, None, clients, size, want)}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        remove_lab(lab)
        shutil.rmtree(work, ignore_errors=True)
    report(results, size, as_json)
    return 0


def _ratio(a: float | None, b: float | None) -> str | None:
    return f"{a / b:.2f}x" if a and b else None


def _mbs(value: float | None) -> str:
    return "failed" if value is None else f"{value:.1f}"


def report(results: dict[str, dict[str, float | None]], size: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"file_size": size, "mb_per_s": results}, indent=2))
        return
    rows = []
    for label, by in results.items():
        rows.append((label, _mbs(by.get("netboot")),
                     _mbs(by["tftpd-hpa"]) if "tftpd-hpa" in by else None,
                     _mbs(by["dnsmasq"]) if "dnsmasq" in by else None,
                     _ratio(by.get("netboot"), by.get("tftpd-hpa")),
                     _ratio(by.get("netboot"), by.get("dnsmasq"))))
    print(f"TFTP/HTTP throughput in MB/s, one {format_size(size)} file, curl over a veth pair")
    print(table(["case", "netboot", "tftpd-hpa", "dnsmasq", "vs tftpd-hpa", "vs dnsmasq"],
                rows))


def serve_netboot(root: str, address: str, tftp_port: int, http_port: int) -> int:
    """Server mode, run in the server namespace: netboot's TFTP and HTTP over ``root``."""
    from netboot.catalog import Catalog
    from netboot.configfile import parse_config
    from netboot.httpd import HttpServer
    from netboot.inventory import Inventory
    from netboot.pool import InventoryPool
    from netboot.stages import StageRecorder
    from netboot.tftp.server import TftpServer

    state = Path(root).parent / "state"
    subnet = IPv4Interface(f"{address}/24").network
    config = parse_config(f"server: {{address: {address}, tftp_root: {root}}}\n"
                          f"dhcp: {{subnet: {subnet}}}\nstorage: {{state_dir: {state}}}\n")
    pool = InventoryPool(lambda: Inventory(config.storage.database))
    stages = StageRecorder(pool)
    catalog = Catalog(config, pool)
    services = [pool, stages, TftpServer(IPv4Address(address), tftp_port, catalog, stages),
                HttpServer(IPv4Address(address), http_port, catalog, stages)]
    from netboot.server import run as run_services

    run_services(services)  # until SIGTERM
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="32M", help="file size (default 32M)")
    parser.add_argument("--json", action="store_true", help="JSON for scripts")
    parser.add_argument("--serve-netboot", nargs=4, metavar=("ROOT", "ADDR", "TFTP", "HTTP"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_netboot:
        root, address, tftp_port, http_port = args.serve_netboot
        return serve_netboot(root, address, int(tftp_port), int(http_port))
    if os.geteuid() != 0:
        print("tftp_bench: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    for tool in ("curl", "in.tftpd", "dnsmasq"):
        if shutil.which(tool) is None:
            print(f"tftp_bench: {tool} is missing; run 'make setup'", file=sys.stderr)
            return 1
    return run(parse_size(args.size), args.json)


if __name__ == "__main__":
    sys.exit(main())
