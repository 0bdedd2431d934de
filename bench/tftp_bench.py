#!/usr/bin/env python3
"""TFTP (and HTTP) throughput: netboot beside tftpd-hpa and dnsmasq, in one run.

Two network namespaces joined by a veth pair (198.18.0.0/15): every server
runs in the server namespace as its own process, serving the same 32 MiB
file; curl downloads it from the client namespace. Cases: one client at
blksize 512, 1468 and 8192, 16 clients at once at blksize 1468, and atftp
with windowsize 16 (RFC 7440); plus netboot's HTTP for one and for 16
clients. Concurrent clients each download from an address of their own, as
that many machines would (netboot holds each address to
``server.tftp_max_per_source`` transfers). Each download is checked by sha256.
Ports are fixed because each namespace is new and private to this run.

    sudo .venv/bin/python bench/tftp_bench.py [--size 32M] [--repeat 3] [--json]
        [--baseline /work/main/.venv/bin/netboot] [--only '1 client']

netboot runs as `netboot serve` does (worker processes, one per CPU).
``--baseline`` runs a second netboot (another checkout's executable) beside
the others, so a change is measured before/after in the same run.

Needs root, curl, atftp, tftpd-hpa (in.tftpd) and dnsmasq. Runtime is bounded:
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
from ipaddress import IPv4Interface
from pathlib import Path

from netboot.host import iproute
from netboot.lab.topology import signals_interrupt
from netboot.output import table
from netboot.size import format_size, parse_size

FILE = "bench.bin"
CURL_LIMIT = 120  # seconds for one download
TFTP_PORTS = {"netboot": 1069, "tftpd-hpa": 2069, "dnsmasq": 69}  # dnsmasq's is not settable
HTTP_PORT = 8080
BASELINE_PORTS = (3069, 8081)  # TFTP and HTTP of the --baseline netboot
CONCURRENT = 16
CONCURRENT_BLKSIZE = 1468


@dataclass
class Lab:
    server_ns: str
    client_ns: str
    server_if: str
    server: str
    clients: tuple[str, ...] = ()  # one source address per concurrent client

    def client(self, argv: list[str]) -> list[str]:
        return iproute.in_netns(self.client_ns, argv)

    def serve(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(iproute.in_netns(self.server_ns, argv), **kwargs)


def make_lab() -> Lab:
    suffix = secrets.token_hex(3)
    lab = Lab(f"nbbs{suffix}", f"nbbc{suffix}", f"nbbs{suffix}", "")
    third = secrets.randbelow(512)
    prefix = f"198.{18 + third // 256}.{third % 256}"
    iproute.add_netns(lab.server_ns)
    iproute.add_netns(lab.client_ns)
    iproute.add_veth(f"nbbs{suffix}", f"nbbc{suffix}", netns=lab.server_ns,
                     peer_netns=lab.client_ns)
    iproute.set_address(f"nbbs{suffix}", IPv4Interface(f"{prefix}.1/24"), netns=lab.server_ns)
    lab.clients = tuple(f"{prefix}.{2 + n}" for n in range(CONCURRENT))
    for address in lab.clients:
        iproute.set_address(f"nbbc{suffix}", IPv4Interface(f"{address}/24"),
                            netns=lab.client_ns)
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


def netboot_config(lab: Lab, root: Path, name: str = "netboot",
                   ports: tuple[int, int] = (TFTP_PORTS["netboot"], HTTP_PORT)) -> Path:
    """`netboot serve` as a user runs it, on the server namespace's end of the pair."""
    path = root.parent / f"{name}.yaml"
    subnet = IPv4Interface(f"{lab.server}/24").network
    path.write_text(f"server:\n  interface: {lab.server_if}\n  address: {lab.server}\n"
                    f"  tftp_root: {root}\n  tftp_port: {ports[0]}\n"
                    f"  http_port: {ports[1]}\n"
                    f"dhcp:\n  subnet: {subnet}\n  mode: \"off\"\n"
                    f"storage:\n  state_dir: {root.parent / f'state-{name}'}\n"
                    "target:\n  manage: false\n")  # file serving only: no tgtd
    return path


def netboot_serve(lab: Lab, executable: str, config: Path, **kwargs) -> subprocess.Popen:
    return lab.serve([executable, "--config", str(config), "--log-level", "warning", "serve"],
                     **kwargs)


def start_servers(lab: Lab, root: Path, baseline: str | None) -> list[subprocess.Popen]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        netboot_serve(lab, str(Path(sys.executable).with_name("netboot")),
                      netboot_config(lab, root), **quiet),
        lab.serve(["in.tftpd", "--foreground", "--address",
                   f"{lab.server}:{TFTP_PORTS['tftpd-hpa']}", "--user", "root", "--secure",
                   str(root)], **quiet),
        lab.serve(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                   "--user=root", f"--pid-file={root.parent / 'dnsmasq.pid'}",
                   f"--listen-address={lab.server}", "--bind-interfaces", "--enable-tftp",
                   f"--tftp-root={root}", "--quiet-tftp"], **quiet),
    ]
    if baseline is not None:
        procs.append(netboot_serve(lab, baseline,
                                   netboot_config(lab, root, "baseline", BASELINE_PORTS), **quiet))
        wait_port(lab, "udp", BASELINE_PORTS[0])
    for port in TFTP_PORTS.values():
        wait_port(lab, "udp", port)
    wait_port(lab, "tcp", HTTP_PORT)
    return procs


def tftp_port(server: str) -> int:
    return BASELINE_PORTS[0] if server == "baseline" else TFTP_PORTS[server]


@dataclass(frozen=True)
class Case:
    """One row: which client program fetches, how many at once, with which options."""

    label: str
    clients: int
    tool: str  # curl (TFTP), atftp (TFTP with windowsize) or http (curl over HTTP)
    blksize: int | None = None
    windowsize: int | None = None

    @property
    def servers(self) -> tuple[str, ...]:
        return ("netboot",) if self.tool == "http" else tuple(TFTP_PORTS)


CASES = (
    *(Case(f"1 client, blksize {b}", 1, "curl", b) for b in (512, 1468, 8192)),
    Case(f"{CONCURRENT} clients, blksize {CONCURRENT_BLKSIZE}", CONCURRENT, "curl",
         CONCURRENT_BLKSIZE),
    # RFC 7440: servers without it (tftpd-hpa 5.2) answer in lock-step.
    Case("atftp, blksize 1468, windowsize 16", 1, "atftp", 1468, 16),
    Case("HTTP, 1 client", 1, "http"),
    Case(f"HTTP, {CONCURRENT} clients", CONCURRENT, "http"),
)


def download(lab: Lab, work: Path, case: Case, server: str, want: str, client: int) -> None:
    """One verified download by concurrent client number ``client`` (from its own address);
    raises RuntimeError saying what went wrong."""
    out = work / f"out-{secrets.token_hex(4)}"
    if case.tool == "atftp":
        argv = ["atftp", "-g", "-r", FILE, "-l", str(out), "--option", f"blksize {case.blksize}",
                "--option", f"windowsize {case.windowsize}", lab.server,
                str(tftp_port(server))]
    else:
        url = (f"http://{lab.server}:{HTTP_PORT}/{FILE}" if case.tool == "http"
               else f"tftp://{lab.server}:{tftp_port(server)}/{FILE}")
        argv = ["curl", "-sS", "--max-time", str(CURL_LIMIT), "--interface",
                lab.clients[client], "-o", str(out), url]
        if case.blksize is not None:
            argv[1:1] = ["--tftp-blksize", str(case.blksize)]
    try:
        proc = subprocess.run(lab.client(argv), capture_output=True, timeout=CURL_LIMIT,
                              check=False)
        got = hashlib.sha256(out.read_bytes()).hexdigest() if out.exists() else None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{case.tool} from {server}: no result in {CURL_LIMIT} s") from None
    finally:
        out.unlink(missing_ok=True)
    if proc.returncode != 0 or got != want:
        raise RuntimeError(f"{case.tool} from {server}: exit {proc.returncode}, "
                           f"{'data differ' if got else 'no data'} {proc.stderr.decode()[:200]}")


def throughput(lab: Lab, work: Path, case: Case, server: str, size: int,
               want: str) -> float | None:
    """MB/s over all clients (total bytes over the wall time), or None if any failed."""
    began = time.monotonic()
    try:
        with ThreadPoolExecutor(case.clients) as pool:
            list(pool.map(lambda n: download(lab, work, case, server, want, n),
                          range(case.clients)))
    except RuntimeError as err:
        print(f"  failed: {err}", file=sys.stderr)
        return None
    return size * case.clients / (time.monotonic() - began) / 1e6


def run(size: int, repeat: int, as_json: bool, baseline: str | None,
        cases: tuple[Case, ...] = CASES) -> int:
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
        procs = start_servers(lab, root, baseline)
        results: dict[str, dict[str, float | None]] = {}
        for case in cases:
            servers = case.servers
            if baseline is not None and case.tool != "http":
                servers = (servers[0], "baseline", *servers[1:])
            runs: dict[str, list[float | None]] = {name: [] for name in servers}
            for number in range(repeat):  # servers take turns, so each sees the same noise
                for name in servers:
                    if not as_json:
                        print(f"  {case.label}: {name} ({number + 1}/{repeat})", file=sys.stderr)
                    runs[name].append(throughput(lab, work, case, name, size, want))
            results[case.label] = {name: max((v for v in got if v is not None), default=None)
                                   for name, got in runs.items()}
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
    report(results, size, repeat, as_json)
    return 0


def _ratio(a: float | None, b: float | None) -> str | None:
    return f"{a / b:.2f}x" if a and b else None


def _mbs(value: float | None) -> str:
    return "failed" if value is None else f"{value:.1f}"


def report(results: dict[str, dict[str, float | None]], size: int, repeat: int,
           as_json: bool) -> None:
    if as_json:
        print(json.dumps({"file_size": size, "repeat": repeat, "mb_per_s": results}, indent=2))
        return
    peers = ["tftpd-hpa", "dnsmasq"]
    if any("baseline" in by for by in results.values()):
        peers.insert(0, "baseline")
    rows = []
    for label, by in results.items():
        rows.append((label, _mbs(by.get("netboot")),
                     *(_mbs(by[peer]) if peer in by else None for peer in peers),
                     *(_ratio(by.get("netboot"), by.get(peer)) for peer in peers)))
    print(f"TFTP/HTTP throughput in MB/s (best of {repeat}), one {format_size(size)} file, "
          "curl over a veth pair")
    print(table(["case", "netboot", *peers, *(f"vs {peer}" for peer in peers)], rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="32M", help="file size (default 32M)")
    parser.add_argument("--json", action="store_true", help="JSON for scripts")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each case; the best counts (default 3)")
    parser.add_argument("--baseline", metavar="NETBOOT",
                        help="another netboot executable to run beside (before/after)")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only the cases whose label contains TEXT")
    args = parser.parse_args()
    cases = tuple(c for c in CASES if args.only is None or args.only in c.label)
    if not cases:
        print(f"tftp_bench: no case matches {args.only!r}; cases: "
              + "; ".join(c.label for c in CASES), file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("tftp_bench: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    for tool in ("curl", "atftp", "in.tftpd", "dnsmasq"):
        if shutil.which(tool) is None:
            print(f"tftp_bench: {tool} is missing; run 'make setup'", file=sys.stderr)
            return 1
    return run(parse_size(args.size), args.repeat, args.json, args.baseline, cases)


if __name__ == "__main__":
    with signals_interrupt():  # SIGTERM and SIGHUP too stop the servers and remove the lab
        sys.exit(main())
