"""DHCP benchmark: `netboot serve` against Kea and dnsmasq, 1,000 registered clients, one run.

Three identical namespace pairs (server <-veth-> load generator): one with
`netboot serve`, one with Kea 2.2 (kea-dhcp4, the 1,000 clients as host
reservations by hw-address, memfile leases persisted), one with dnsmasq
holding them as static `dhcp-host` entries. Kea's `perfdhcp` (Debian:
kea-admin) plays a relay with the 1,000 client MACs and offers DORA
exchanges at a ladder of rates, each step run against every server back to
back, so a busy machine disturbs all alike. Reported per server: the highest
offered rate sustained with under 1 % of exchanges lost, DISCOVER->OFFER
p50/p99 at that rate (perfdhcp's per-exchange timers), and the peak rate
completed at any step.
Needs root; about 1-2 minutes. With ``--inventory-url`` netboot's inventory is
that PostgreSQL database (give it an empty one) instead of SQLite in the run's
state dir.

    .venv/bin/python bench/dhcp_bench.py [--clients 1000 (up to 10,000)] [--step-seconds 3]
        [--inventory-url postgresql://... [--inventory-password-file FILE]]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from netboot.configfile import load_config
from netboot.host import iproute
from netboot.inventory.clients import Client
from netboot.inventory.store import open_inventory
from netboot.lab.topology import signals_interrupt
from netboot.output import table
from netboot.provisioning.clients import add_client

# Room for 10,000 fixed addresses besides the dynamic quarter: a row at 10,000 registered
# clients shows whether a server's cost grows with them.
SUBNET = IPv4Network("198.18.0.0/18")
SERVER = "198.18.0.1"
RELAY = "198.18.63.1"  # perfdhcp's address: it acts as a relay (giaddr) on the same subnet
SERVERS = ("netboot", "kea", "dnsmasq")
RATES = (300, 600, 900, 1200, 1600, 2000, 2500, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000)
MAX_LOSS = 0.01
GIVE_UP_LOSS = 0.5  # a server this far past its limit is not run at higher rates


@dataclass
class Step:
    rate: int
    seconds: int
    sent: int
    completed: int
    delays_ms: list[float]

    @property
    def loss(self) -> float:
        return 1 - self.completed / self.sent if self.sent else 1.0

    @property
    def completed_rate(self) -> float:
        return self.completed / self.seconds


@dataclass
class Pair:
    """A server namespace and a load-generator namespace joined by a veth pair."""

    server_ns: str
    client_ns: str
    server_if: str

    @classmethod
    def create(cls, tag: str) -> Pair:
        pair = cls(f"nbbs{tag}", f"nbbc{tag}", f"nbbv{tag}")
        peer = f"nbbw{tag}"
        for ns in (pair.server_ns, pair.client_ns):
            iproute.add_netns(ns)
        iproute.add_veth(pair.server_if, peer, peer_netns=pair.client_ns)
        iproute.ip("link", "set", pair.server_if, "netns", pair.server_ns)
        for address, where, ns in ((SERVER, pair.server_if, pair.server_ns),
                                   (RELAY, peer, pair.client_ns)):
            iproute.set_address(where, IPv4Interface(f"{address}/{SUBNET.prefixlen}"), netns=ns)
        return pair

    def delete(self) -> None:
        for ns in (self.server_ns, self.client_ns):
            iproute.delete_netns(ns)


def run_perfdhcp(ns: str, macs: Path, rate: int, seconds: int) -> Step:
    """One perfdhcp run at ``rate`` DORA/s; delays are DISCOVER->OFFER per exchange."""
    argv = ["perfdhcp", "-4", "-l", RELAY, "-M", str(macs), "-r", str(rate), "-p", str(seconds),
            "-d", "1", "-W", "500000", "-x", "t", SERVER]
    out = subprocess.run(iproute.in_netns(ns, argv), capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    sent = _count(out, r"sent packets: (\d+)")
    completed = _count(out, r"received packets: (\d+)", last=True)
    return Step(rate, seconds, sent, completed, _discover_offer_delays(out))


def _count(out: str, pattern: str, last: bool = False) -> int:
    found = re.findall(pattern, out)
    if not found:
        raise SystemExit(f"perfdhcp output not understood (no {pattern!r}):\n{out[-2000:]}")
    return int(found[-1] if last else found[0])


def _discover_offer_delays(out: str) -> list[float]:
    """From ``-x t``: a ``sent / received: S / R`` line per completed DO exchange."""
    section = out.split("Timestamps for packets: DISCOVER-OFFER", 1)[-1]
    section = section.split("Timestamps for packets: REQUEST-ACK", 1)[0]
    delays = []
    for line in section.splitlines():
        stamps = re.findall(r"(\d+\.\d+)", line)
        if len(stamps) >= 2:
            delays.append((float(stamps[1]) - float(stamps[0])) * 1000.0)
    return delays


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def start(ns: str, argv: list[str], log: Path, ready: str) -> subprocess.Popen:
    out = log.open("ab")
    proc = subprocess.Popen(iproute.in_netns(ns, argv), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out.close()
    deadline = time.monotonic() + 60
    while ready not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{argv[0]} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_netboot(work: Path, pair: Pair, clients: int,
                  inventory_yaml: str = "") -> tuple[subprocess.Popen, list[Client]]:
    config_path = work / "netboot.yaml"
    config_path.write_text(
        f"server:\n  interface: {pair.server_if}\n  address: {SERVER}\n"
        f"storage:\n  state_dir: {work / 'state'}\n"
        "target:\n  manage: false\n"  # DHCP only: no iSCSI target for the 1,000 clients
        f"dhcp:\n  subnet: {SUBNET}\n  router_advertisements: false\n" + inventory_yaml)
    config = load_config(config_path)
    began = time.monotonic()
    with open_inventory(config) as inventory:
        registered = [add_client(config, inventory,
                                 f"52:54:00:be:{n >> 8:02x}:{n & 0xFF:02x}").client
                      for n in range(clients)]
    print(f"registered {clients} clients in {time.monotonic() - began:.1f}s", flush=True)
    # Warnings only, as Kea below: at info serve logs a line per ACK. It says it is ready
    # as it would to systemd, on a notify socket of the bench's.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(work / "notify"))
        notify.settimeout(60)
        with (work / "serve.log").open("ab") as out:
            proc = subprocess.Popen(
                iproute.in_netns(pair.server_ns, [
                    sys.executable, "-m", "netboot", "--config", str(config_path),
                    "--log-level", "warning", "serve"]),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "NOTIFY_SOCKET": str(work / "notify")})
        try:
            while not notify.recv(4096).startswith(b"READY=1"):
                pass
        except TimeoutError:
            log = (work / "serve.log").read_text()
            raise SystemExit(f"netboot serve did not start:\n{log}") from None
    return proc, registered


def start_dnsmasq(work: Path, pair: Pair, registered: list[Client]) -> subprocess.Popen:
    hosts = work / "dnsmasq.conf"
    hosts.write_text("".join(f"dhcp-host={c.mac},{c.ip}\n" for c in registered))
    return start(pair.server_ns, [
        "dnsmasq", "--no-daemon", "--port=0", f"--conf-file={hosts}", "--log-facility=-",
        f"--interface={pair.server_if}", "--bind-interfaces", "--no-ping",
        f"--dhcp-range={SERVER},static,{SUBNET.netmask},1h",
        f"--dhcp-leasefile={work / 'dnsmasq.leases'}", f"--pid-file={work / 'dnsmasq.pid'}",
    ], work / "dnsmasq.log", "dnsmasq-dhcp")


def start_kea(work: Path, pair: Pair, registered: list[Client]) -> subprocess.Popen:
    """Kea 2.2 as a performance-minded admin runs it for relayed traffic: UDP sockets,
    reservations by hw-address (all out of pool), leases in memfile, persisted; logging
    at WARN (INFO writes a line per lease)."""
    conf = work / "kea-dhcp4.json"
    conf.write_text(json.dumps({"Dhcp4": {
        "interfaces-config": {"interfaces": [pair.server_if], "dhcp-socket-type": "udp"},
        "lease-database": {"type": "memfile", "persist": True,
                           "name": str(work / "kea-leases4.csv"), "lfc-interval": 3600},
        "valid-lifetime": 3600,
        "host-reservation-identifiers": ["hw-address"],
        "subnet4": [{"id": 1, "subnet": str(SUBNET), "reservations-out-of-pool": True,
                     "reservations": [{"hw-address": c.mac, "ip-address": str(c.ip)}
                                      for c in registered]}],
        "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
                     "output_options": [{"output": "stdout"}]}],
    }}, indent=1))
    log = work / "kea.log"
    env = {**os.environ, "KEA_PIDFILE_DIR": str(work), "KEA_LOCKFILE_DIR": str(work)}
    with log.open("ab") as out:
        proc = subprocess.Popen(iproute.in_netns(pair.server_ns, ["kea-dhcp4", "-c", str(conf)]),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env)
    deadline = time.monotonic() + 60
    while ":67 " not in subprocess.run(
            iproute.in_netns(pair.server_ns, ["ss", "-Hlun"]), capture_output=True,
            text=True, check=False).stdout + " ":
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"kea-dhcp4 did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc


def ladder(pairs: dict[str, Pair], macs: Path, seconds: int) -> dict[str, list[Step]]:
    """Each rate against each server in turn, until every server is far past its limit."""
    steps: dict[str, list[Step]] = {name: [] for name in pairs}
    for rate in RATES:
        running = [n for n in pairs if not steps[n] or steps[n][-1].loss < GIVE_UP_LOSS]
        if not running:
            break
        cells = []
        for name in running:
            step = run_perfdhcp(pairs[name].client_ns, macs, rate, seconds)
            steps[name].append(step)
            cells.append(f"{name} {step.completed_rate:5.0f}/s done, loss {step.loss:6.2%}, "
                         f"p99 {percentile(step.delays_ms, 99):6.2f} ms")
        print(f"  {rate:>5}/s offered: " + " | ".join(cells), flush=True)
    return steps


def report(steps: dict[str, list[Step]], clients: int) -> None:
    rows, sustained, peak = [], {}, {}
    for name, runs in steps.items():
        clean = [s for s in runs if s.loss < MAX_LOSS]
        best = max(clean, key=lambda s: s.rate) if clean else None
        sustained[name] = best.rate if best else 0
        peak[name] = max(s.completed_rate for s in runs)
        rows.append([name, best.rate if best else None,
                     f"{percentile(best.delays_ms, 50):.2f}" if best else None,
                     f"{percentile(best.delays_ms, 99):.2f}" if best else None,
                     f"{peak[name]:.0f}"])
    print(f"\nDORA, {clients} registered clients; sustained = highest offered rate with under "
          f"{MAX_LOSS:.0%} lost; DISCOVER->OFFER delay at that rate; peak = most DORA/s "
          "completed at any offered rate")
    print(table(["server", "sustained DORA/s", "p50 ms", "p99 ms", "peak DORA/s"], rows))
    for peer in SERVERS[1:]:
        if sustained.get(peer):
            print(f"netboot / {peer} sustained: {sustained['netboot'] / sustained[peer]:.2f}x")
        print(f"netboot / {peer} peak: {peak['netboot'] / peak[peer]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--step-seconds", type=int, default=3)
    parser.add_argument("--inventory-url", help="a PostgreSQL database (empty) for netboot")
    parser.add_argument("--inventory-password-file", help="its password (a 0600 file)")
    args = parser.parse_args()
    inventory_yaml = ""
    if args.inventory_url:
        inventory_yaml = f'inventory:\n  url: "{args.inventory_url}"\n'
        if args.inventory_password_file:
            inventory_yaml += f"  password_file: {args.inventory_password_file}\n"
        print(f"netboot's inventory: {args.inventory_url}")
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    for tool in ("perfdhcp", "dnsmasq", "kea-dhcp4"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (see debian-packages.txt)")
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs (other work skews every server)")
    work = Path(tempfile.mkdtemp(prefix="netboot-dhcp-bench-"))
    work.chmod(0o711)  # serve's network part (server.user) reaches the config and state in it
    pairs: dict[str, Pair] = {}
    procs: list[subprocess.Popen] = []
    try:
        for name in SERVERS:
            pairs[name] = Pair.create(secrets.token_hex(3))
        proc, registered = start_netboot(work, pairs["netboot"], args.clients, inventory_yaml)
        procs.append(proc)
        procs.append(start_dnsmasq(work, pairs["dnsmasq"], registered))
        procs.append(start_kea(work, pairs["kea"], registered))
        macs = work / "macs.txt"
        macs.write_text("".join(f"{c.mac}\n" for c in registered))
        steps = ladder(pairs, macs, args.step_seconds)
    finally:
        for proc in procs:
            stop(proc)
        for pair in pairs.values():
            pair.delete()
        shutil.rmtree(work, ignore_errors=True)
    report(steps, args.clients)


if __name__ == "__main__":
    with signals_interrupt():  # SIGTERM and SIGHUP too stop the servers and remove the pairs
        main()
