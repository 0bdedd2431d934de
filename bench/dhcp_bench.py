"""DHCP benchmark: `netboot serve` against dnsmasq, 1,000 registered clients, one run.

Both servers run in turn in the same network namespace on the same veth pair;
Kea's `perfdhcp` (Debian: kea-admin) in a second namespace plays a relay
with 1,000 client MACs and offers DORA exchanges at a ladder of rates. For
each server we report the highest offered rate it sustains (under 1 % of
exchanges lost), and the DISCOVER->OFFER delay p50/p99 at that rate, from
perfdhcp's per-exchange timers. Needs root; takes about a minute.

    sudo .venv/bin/python bench/dhcp_bench.py [--clients 1000] [--step-seconds 4]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path

from netboot import iproute
from netboot.clients import add_client
from netboot.configfile import load_config
from netboot.inventory import Inventory
from netboot.output import table

SUBNET = "198.18.0.0/21"  # room for 1,000 fixed addresses outside the dynamic quarter
SERVER = "198.18.0.1"
RELAY = "198.18.7.1"  # perfdhcp's address: it acts as a relay (giaddr) on the same subnet
RATES = (300, 600, 900, 1200, 1600, 2000, 2500, 3000)
MAX_LOSS = 0.01


@dataclass
class Step:
    rate: int
    sent: int
    completed: int
    delays_ms: list[float]

    @property
    def loss(self) -> float:
        return 1 - self.completed / self.sent if self.sent else 1.0

    @property
    def achieved(self) -> float:
        return self.completed / self.seconds

    seconds: float = 1.0


def run_perfdhcp(ns: str, macs: Path, rate: int, seconds: float) -> Step:
    """One perfdhcp run at ``rate`` DORA/s; delays are DISCOVER->OFFER per exchange."""
    argv = ["perfdhcp", "-4", "-l", RELAY, "-M", str(macs), "-r", str(rate),
            "-p", str(int(seconds)), "-d", "1", "-W", "500000", "-x", "t", SERVER]
    proc = subprocess.run(iproute.in_netns(ns, argv), capture_output=True, text=True,
                          timeout=seconds + 30)
    out = proc.stdout
    sent = _count(out, r"sent packets: (\d+)")
    completed = _count(out, r"received packets: (\d+)", last=True)
    delays = _discover_offer_delays(out)
    return Step(rate, sent, completed, delays, seconds)


def _count(out: str, pattern: str, last: bool = False) -> int:
    found = re.findall(pattern, out)
    if not found:
        raise SystemExit(f"perfdhcp output not understood (no {pattern!r}):\n{out[-2000:]}")
    return int(found[-1] if last else found[0])


def _discover_offer_delays(out: str) -> list[float]:
    """From ``-x t``: lines of send/receive timestamps for each DO exchange, in seconds."""
    section = out.split("Timestamps for packets: DISCOVER-OFFER", 1)[-1]
    section = section.split("Timestamps for packets: REQUEST-ACK", 1)[0]
    delays = []
    for line in section.splitlines():
        stamps = re.findall(r"(\d+\.\d+)", line)
        if len(stamps) >= 2:
            delays.append((float(stamps[1]) - float(stamps[0])) * 1000.0)
    return delays


def ladder(ns: str, macs: Path, seconds: float) -> tuple[Step | None, list[Step]]:
    """Offer rising rates until loss passes MAX_LOSS; the last clean step is the result."""
    steps, best = [], None
    for rate in RATES:
        step = run_perfdhcp(ns, macs, rate, seconds)
        steps.append(step)
        print(f"  {rate:>5}/s offered: {step.completed / seconds:7.0f}/s completed, "
              f"loss {step.loss:6.2%}", flush=True)
        if step.loss > MAX_LOSS:
            break
        best = step
    return best, steps


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def start(ns: str, argv: list[str], log: Path, ready: str | None = None) -> subprocess.Popen:
    out = log.open("ab")
    proc = subprocess.Popen(iproute.in_netns(ns, argv), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while ready and ready not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{argv[0]} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    time.sleep(0.5)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--step-seconds", type=int, default=4)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    for tool in ("perfdhcp", "dnsmasq"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (see debian-packages.txt)")
    work = Path(tempfile.mkdtemp(prefix="netboot-dhcp-bench-"))
    tag = secrets.token_hex(3)
    srv, cli = f"nbbs{tag}", f"nbbc{tag}"
    srv_if, cli_if = f"nbbv{tag}", f"nbbw{tag}"
    try:
        for ns in (srv, cli):
            iproute.add_netns(ns)
        iproute.add_veth(srv_if, cli_if, peer_netns=cli)
        iproute.ip("link", "set", srv_if, "netns", srv)
        iproute.set_address(srv_if, IPv4Interface(f"{SERVER}/21"), netns=srv)
        iproute.set_address(cli_if, IPv4Interface(f"{RELAY}/21"), netns=cli)
        results = bench(work, srv, cli, srv_if, args.clients, args.step_seconds)
    finally:
        for ns in (srv, cli):
            iproute.delete_netns(ns)
        shutil.rmtree(work, ignore_errors=True)
    report(results, args.clients)


def bench(work: Path, srv: str, cli: str, srv_if: str, clients: int,
          seconds: float) -> dict[str, Step | None]:
    config_path = work / "netboot.yaml"
    config_path.write_text(
        f"server:\n  interface: {srv_if}\n  address: {SERVER}\n"
        f"storage:\n  state_dir: {work / 'state'}\n"
        f"dhcp:\n  subnet: {SUBNET}\n  router_advertisements: false\n"
        "target:\n  manage: false\n")  # a DHCP bench: no tgtd, no targets
    config = load_config(config_path)
    macs = [f"52:54:00:be:{n >> 8:02x}:{n & 0xFF:02x}" for n in range(clients)]
    began = time.monotonic()
    with Inventory(config.storage.database) as inventory:
        registered = [add_client(config, inventory, mac).client for mac in macs]
    print(f"registered {clients} clients in {time.monotonic() - began:.1f}s", flush=True)
    mac_file = work / "macs.txt"
    mac_file.write_text("\n".join(macs) + "\n")
    results: dict[str, Step | None] = {}

    print("netboot serve:", flush=True)
    proc = start(srv, [sys.executable, "-m", "netboot", "--config", str(config_path),
                       "--log-level", "warning", "serve"], work / "serve.log", ready=None)
    try:
        results["netboot"], _ = ladder(cli, mac_file, seconds)
    finally:
        stop(proc)

    hosts = work / "dnsmasq.conf"
    hosts.write_text("".join(f"dhcp-host={c.mac},{c.ip}\n" for c in registered))
    print("dnsmasq:", flush=True)
    proc = start(srv, ["dnsmasq", "--no-daemon", "--port=0", f"--conf-file={hosts}",
                       f"--interface={srv_if}", "--bind-interfaces", "--no-ping",
                       f"--dhcp-range={SERVER},static,255.255.248.0,1h",
                       f"--dhcp-leasefile={work / 'dnsmasq.leases'}",
                       f"--pid-file={work / 'dnsmasq.pid'}"], work / "dnsmasq.log")
    try:
        results["dnsmasq"], _ = ladder(cli, mac_file, seconds)
    finally:
        stop(proc)
    return results


def report(results: dict[str, Step | None], clients: int) -> None:
    rows = []
    for name, step in results.items():
        if step is None:
            rows.append([name, "-", "-", "-", "-"])
            continue
        rows.append([name, f"{step.rate}", f"{step.achieved:.0f}",
                     f"{percentile(step.delays_ms, 50):.2f}",
                     f"{percentile(step.delays_ms, 99):.2f}"])
    print()
    print(f"DORA with {clients} registered clients (sustained: highest offered rate with "
          f"under {MAX_LOSS:.0%} lost; delays DISCOVER->OFFER at that rate)")
    print(table(["server", "sustained DORA/s", "completed/s", "p50 ms", "p99 ms"], rows))
    ours, theirs = results.get("netboot"), results.get("dnsmasq")
    if ours and theirs:
        print(f"netboot/dnsmasq: {ours.rate / theirs.rate:.2f}x")


if __name__ == "__main__":
    main()
