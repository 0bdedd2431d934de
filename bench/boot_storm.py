"""Boot storm: N registered machines boot at once, at the protocol level, against `netboot serve`.

What the server's side of a rack power-on costs, without emulated VMs
(which are CPU-bound on this machine): a lab (`netboot lab up`'s VLAN, real
`netboot serve` and tgtd, the built-in image) gets the largest N clients
registered, and a second namespace, joined to the boot VLAN by a veth, plays
the machines. Each simulated machine, all started together:

1. DHCP DISCOVER/REQUEST as iPXE (user class iPXE, arch 0), its own MAC in
   scapy-built frames sent from an AF_PACKET socket (broadcast flag set, so
   replies reach the one UDP port-68 socket that collects every machine's);
2. its iPXE script over HTTP, then the kernel and both initrds the script
   names, from the address DHCP gave it (per-client paths are served only there);
3. an iSCSI login to its own target with its initiator IQN and CHAP
   (libiscsi's ``iscsi-inq``: login, INQUIRY of LUN 1, logout; the secret goes
   in the environment, never on a command line).

Reported per N: time from the start to each machine's login (p50/p95/max),
how many failed and where, and the CPU seconds serve and tgtd used (from
/proc/<pid>/stat), per client and as cores (CPU seconds / wall seconds).
Aim (issue 8): 200 machines logged in within 60 s, the server under one core.
The client addresses are put on the machines' side before the storm (one
`ip -batch`), and DHCP must hand out exactly those. Needs root; with the
default N = 10, 50, 200 it takes about 3 minutes (mostly registering clients).

    .venv/bin/python bench/boot_storm.py [--clients 10 50 200] [--timeout 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from http.client import HTTPConnection
from ipaddress import IPv4Interface
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from netboot import iproute  # noqa: E402
from netboot.clients import add_client  # noqa: E402
from netboot.configfile import load_config  # noqa: E402
from netboot.inventory import Inventory  # noqa: E402
from netboot.lab import lab  # noqa: E402
from netboot.lab.topology import load as load_topology  # noqa: E402
from netboot.lab.vm import lab_mac  # noqa: E402
from netboot.output import emit_json, table  # noqa: E402
from netboot.target.tgt import TgtBackend  # noqa: E402
from netboot.target.tgtd import tgtd_pid  # noqa: E402

LAB_CACHE = Path(os.environ.get("NETBOOT_LAB_CACHE", REPO / "lab-state" / "cache"))
VLAN = IPv4Interface("198.18.0.1/22")  # room for 200+ fixed addresses besides DHCP's pool
LUN_SIZE = "32M"  # the built-in image's own size: no resize per client
STAGES = ("dhcp", "script", "files", "login")
DHCP_TRIES = 4  # a lost DISCOVER/REQUEST is sent again, as firmware does
DHCP_WAIT = 4.0  # seconds per try


@dataclass(frozen=True)
class Machine:
    """One simulated machine: what it sends and the credentials it logs in with."""

    mac: str
    ip: str
    initiator: str
    target: str
    user: str
    secret: str


@dataclass
class Result:
    mac: str
    at: dict[str, float]  # stage -> seconds since the storm's start
    failed: str | None = None
    bytes: int = 0


# --- the machines' side (runs in its own namespace) ---------------------------------

def _dhcp_frame(mac: str, xid: int, kind: str, extra: list) -> bytes:
    """A DHCP message as iPXE on BIOS sends it, in an Ethernet broadcast frame (scapy)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from netboot.mac import mac_bytes

    packet = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
              / UDP(sport=68, dport=67)
              / BOOTP(op=1, xid=xid, flags=0x8000, chaddr=mac_bytes(mac) + bytes(10))
              / DHCP(options=[("message-type", kind), ("pxe_client_architecture", b"\0\0"),
                              ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"),
                              ("user_class", b"iPXE"),
                              ("client_id", b"\x01" + mac_bytes(mac)), *extra, "end"]))
    return bytes(packet)


class DhcpWire:
    """One raw socket sends every machine's frames; one UDP socket receives every reply.

    Replies are handed to the machine waiting for their xid.
    """

    def __init__(self, interface: str) -> None:
        self.send_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.send_sock.bind((interface, 0))
        self.recv_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.recv_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.recv_sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        self.recv_sock.bind(("", 68))
        self.waiting: dict[int, queue.Queue[bytes]] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            data = self.recv_sock.recv(4096)
            if len(data) >= 8 and data[0] == 2:  # BOOTREPLY
                with self.lock:
                    box = self.waiting.get(int.from_bytes(data[4:8], "big"))
                if box is not None:
                    box.put(data)

    def exchange(self, frame: bytes, xid: int, want: int) -> bytes | None:
        """Send ``frame`` until a reply of DHCP message type ``want`` comes back."""
        box: queue.Queue[bytes] = queue.Queue()
        with self.lock:
            self.waiting[xid] = box
        try:
            for _ in range(DHCP_TRIES):
                self.send_sock.send(frame)
                deadline = time.monotonic() + DHCP_WAIT
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        reply = box.get(timeout=left)
                    except queue.Empty:
                        break
                    if _options(reply).get("message-type") == want:
                        return reply
            return None
        finally:
            with self.lock:
                del self.waiting[xid]


def _options(reply: bytes) -> dict:
    """A DHCP reply's options by scapy's names."""
    from scapy.layers.dhcp import BOOTP, DHCP

    return dict(o[:2] for o in BOOTP(reply)[DHCP].options if isinstance(o, tuple))


def _get(server: str, port: int, source: str, path: str) -> bytes:
    connection = HTTPConnection(server, port, timeout=60, source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return body
    finally:
        connection.close()


def _boot_one(machine: Machine, wire: DhcpWire, server: str, http_port: int, start: float,
              result: Result) -> None:
    from scapy.layers.dhcp import BOOTP

    def mark(stage: str) -> None:
        result.at[stage] = time.monotonic() - start

    xid = secrets.randbits(32)
    offer = wire.exchange(_dhcp_frame(machine.mac, xid, "discover", []), xid, 2)
    if offer is None:
        raise RuntimeError("dhcp: no OFFER")
    ack = wire.exchange(_dhcp_frame(machine.mac, xid, "request", [
        ("requested_addr", BOOTP(offer).yiaddr), ("server_id", _options(offer)["server_id"])]),
        xid, 5)
    if ack is None:
        raise RuntimeError("dhcp: no ACK")
    if BOOTP(ack).yiaddr != machine.ip:
        raise RuntimeError(f"dhcp: got {BOOTP(ack).yiaddr}, inventory says {machine.ip}")
    mark("dhcp")
    script = _get(server, http_port, machine.ip, f"/clients/{machine.mac}/boot.ipxe").decode()
    mark("script")
    urls = re.findall(r"^(?:kernel|initrd(?: --name \S+)?) (http://\S+)", script, re.MULTILINE)
    if len(urls) != 3:
        raise RuntimeError(f"script: expected a kernel and two initrds, found {urls}")
    for url in urls:
        result.bytes += len(_get(server, http_port, machine.ip, "/" + url.split("/", 3)[3]))
    mark("files")
    env = {**os.environ, "LIBISCSI_CHAP_PASSWORD": machine.secret}
    done = subprocess.run(["iscsi-inq", "-i", machine.initiator,
                           f"iscsi://{machine.user}@{server}:3260/{machine.target}/1"],
                          capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"login: {(done.stderr or done.stdout).strip()[:120]}")
    mark("login")


def storm(spec: dict) -> list[Result]:
    """Boot every machine in ``spec`` at once; each one's result (run inside the namespace)."""
    machines = [Machine(**m) for m in spec["machines"]]
    wire = DhcpWire(spec["interface"])
    results = [Result(m.mac, {}) for m in machines]
    start = time.monotonic()

    def run(machine: Machine, result: Result) -> None:
        try:
            _boot_one(machine, wire, spec["server"], spec["http_port"], start, result)
        except Exception as err:  # one machine's failure is a figure, not the end of the run
            result.failed = str(err) or type(err).__name__

    threads = [threading.Thread(target=run, args=pair, daemon=True)
               for pair in zip(machines, results, strict=True)]
    for thread in threads:
        thread.start()
    deadline = start + spec["timeout"]
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    for result in results:
        if "login" not in result.at and result.failed is None:
            result.failed = f"timeout: still at {max(result.at, default='dhcp', key=result.at.get)}"
    return results


# --- the server's side --------------------------------------------------------------

def _register(state: lab.LabState, count: int) -> list[Machine]:
    config = load_config(state.config)
    machines = []
    with Inventory(config.storage.database) as inventory:
        have = {c.mac: c for c in inventory.clients()}
        for i in range(count):
            mac = lab_mac(i + 1)
            client = have.get(mac) or add_client(
                config, inventory, mac, hostname=f"storm-{i + 1:03d}", image=lab.IMAGE,
                backend=None).client  # serve's reconcile makes the targets
            machines.append(Machine(mac, str(client.ip), client.initiator_iqn, client.target_iqn,
                                    client.chap_user, client.chap_secret))
            if (i + 1) % 25 == 0 or i + 1 == count:
                print(f"  registered {i + 1}/{count} clients", flush=True)
    return machines


def _wait_for_targets(state: lab.LabState, count: int, timeout: float = 600) -> None:
    backend = TgtBackend(state.tgt_control_port, load_config(state.config).storage.state_dir)
    deadline = time.monotonic() + timeout
    while (made := len(backend.targets())) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"serve made {made} of {count} targets in {timeout:.0f} s")
        time.sleep(1)
    print(f"  tgtd holds {count} targets", flush=True)


def _machines_side(vlan_netns: str, bridge: str, machines: list[Machine], prefix: int) -> tuple[
        str, str]:
    """A namespace for the machines, a veth into the VLAN's bridge, every client address on it."""
    netns, outside, inside = (f"nbstorm{secrets.token_hex(3)}", f"nbsv{secrets.token_hex(3)}",
                              f"nbsm{secrets.token_hex(3)}")
    iproute.add_netns(netns)
    iproute.add_veth(outside, inside, netns=vlan_netns, peer_netns=netns)
    iproute.attach(outside, bridge, netns=vlan_netns)
    batch = "".join(f"addr add {m.ip}/{prefix} dev {inside}\n" for m in machines)
    subprocess.run(iproute.in_netns(netns, ["ip", "-batch", "-"]), input=batch, text=True,
                   check=True)
    iproute.ip("link", "set", inside, "up", netns=netns)
    iproute.ip("link", "set", "lo", "up", netns=netns)
    return netns, inside


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: lab.cpu_seconds(pid) or 0.0 for name, pid in pids.items()}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _round(state: lab.LabState, netns: str, interface: str, machines: list[Machine],
           timeout: float) -> dict:
    topo = load_topology(state.lab_dir)
    assert topo is not None
    config = load_config(state.config)
    pids = {"serve": state.pids["serve"], "tgtd": tgtd_pid(state.tgt_control_port) or 0}
    spec = {"machines": [asdict(m) for m in machines], "interface": interface,
            "server": str(topo.server), "http_port": config.server.http_port, "timeout": timeout}
    before = _cpu(pids)
    wall = time.monotonic()
    done = subprocess.run(iproute.in_netns(netns, [sys.executable, __file__, "--machines"]),
                          input=json.dumps(spec), capture_output=True, text=True,
                          timeout=timeout + 60)
    wall = time.monotonic() - wall
    after = _cpu(pids)
    if done.returncode != 0:
        raise SystemExit(f"the machines' side failed: {done.stderr.strip()[-2000:]}")
    results = [Result(**r) for r in json.loads(done.stdout)]
    logins = [r.at["login"] for r in results if "login" in r.at]
    used = {name: after[name] - before[name] for name in pids}
    n = len(machines)
    return {
        "clients": n, "logged_in": len(logins), "wall_s": round(wall, 2),
        "login_p50_s": round(_percentile(logins, 0.5), 2) if logins else None,
        "login_p95_s": round(_percentile(logins, 0.95), 2) if logins else None,
        "login_max_s": round(max(logins), 2) if logins else None,
        "dhcp_p50_s": round(statistics.median(r.at["dhcp"] for r in results if "dhcp" in r.at), 2)
        if any("dhcp" in r.at for r in results) else None,
        "serve_cpu_s": round(used["serve"], 2), "tgtd_cpu_s": round(used["tgtd"], 2),
        "cpu_ms_per_client": round(1000 * (used["serve"] + used["tgtd"]) / n, 1),
        "server_cores": round((used["serve"] + used["tgtd"]) / wall, 2),
        "mb_per_client": round(statistics.mean(r.bytes for r in results) / 1e6, 1),
        "failures": dict(Counter(r.failed.split(":")[0] for r in results if r.failed)),
        "first_failure": next((f"{r.mac}: {r.failed}" for r in results if r.failed), None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds one storm may take before unfinished machines count as "
                             "failed")
    parser.add_argument("--json", action="store_true", help="JSON for scripts.")
    parser.add_argument("--machines", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.machines:  # the machines' side, started by the run below inside its namespace
        print(json.dumps([asdict(r) for r in storm(json.load(sys.stdin))]))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root: network namespaces, tgtd, raw sockets")
    for tool in ("tgtd", "iscsi-inq"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (see debian-packages.txt)")
    lab_dir = Path(tempfile.mkdtemp(prefix="netboot-storm-"))
    netns = None
    rows = []
    try:
        print(f"lab in {lab_dir} (discovery CHAP off: tgt holds at most 16 discovery accounts)")
        state = lab.up(lab_dir, 0, lun_size=LUN_SIZE, discovery_auth=False,
                       cache_dir=LAB_CACHE, vlan=VLAN,
                       say=lambda line: print(f"  {line}", flush=True))
        machines = _register(state, max(args.clients))
        _wait_for_targets(state, len(machines))
        topo = load_topology(lab_dir)
        assert topo is not None
        netns, interface = _machines_side(topo.netns, topo.bridge, machines,
                                          topo.address.network.prefixlen)
        for count in args.clients:
            print(f"storm of {count} machines ...", flush=True)
            rows.append(_round(state, netns, interface, machines[:count], args.timeout))
    finally:
        if netns is not None:
            iproute.delete_netns(netns)
        lab.down(lab_dir)
        shutil.rmtree(lab_dir, ignore_errors=True)
    if args.json:
        emit_json(rows)
        return 0
    print(table(["machines", "logged in", "login p50", "p95", "max", "DHCP p50", "serve CPU",
                 "tgtd CPU", "CPU/client", "cores", "MB/client"],
                [(r["clients"], r["logged_in"], r["login_p50_s"], r["login_p95_s"],
                  r["login_max_s"], r["dhcp_p50_s"], r["serve_cpu_s"], r["tgtd_cpu_s"],
                  f'{r["cpu_ms_per_client"]} ms', r["server_cores"], r["mb_per_client"])
                 for r in rows]))
    for r in rows:
        if r["failures"]:
            print(f'{r["clients"]} machines: failures {r["failures"]}; first: {r["first_failure"]}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
