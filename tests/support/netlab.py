"""Throw-away networks for wire tests: namespaces and veth pairs with random names, a
`netboot serve` inside one of them, and real DHCP clients in another.

Everything is addressed from 198.18.0.0/15 and removed when the test ends,
pass or fail (the fixtures call :meth:`Lab.close` in their finalizers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Interface
from pathlib import Path

from netboot.configfile import load_config
from netboot.host import iproute
from netboot.serve.service import SERVE_READY
from netboot.target.tgtd import forget_control_port, free_control_port, stop_tgtd
from tests.support.paths import make_reachable


def unique(prefix: str) -> str:
    """A name no other test run uses: ``prefix`` + 6 random hex digits (<= 15 chars)."""
    name = f"{prefix}{secrets.token_hex(3)}"
    assert len(name) <= 15, name
    return name


class Lab:
    """Namespaces, links and processes of one test; :meth:`close` removes them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.tgtd_ports: set[int] = set()  # serve starts a tgtd on these; stopped in close()
        self.bridges: dict[str, str] = {}  # each switch's hub namespace: its bridge
        self.taps: list[tuple[str, str]] = []  # (hub, tap) of each switch's taps, for VMs

    def netns(self, role: str) -> str:
        name = unique(f"nb{role}")
        iproute.add_netns(name)
        self.namespaces.append(name)
        self.sysctl(name, "net.ipv6.conf.default.accept_dad=0")
        return name

    def link(self, ns_a: str, ns_b: str, *, address_a: str | None = None,
             address_b: str | None = None, mac_b: str | None = None,
             name_b: str | None = None) -> tuple[str, str]:
        """A veth pair between two namespaces, up, with the given addresses (``name_b``:
        the name of ``ns_b``'s end, else a new one)."""
        a, b = unique("nbv"), name_b or unique("nbv")
        iproute.add_veth(a, b, netns=None, peer_netns=ns_b)
        iproute.ip("link", "set", a, "netns", ns_a)
        for ns, name, address in ((ns_a, a, address_a), (ns_b, b, address_b)):
            self.sysctl(ns, f"net.ipv6.conf.{name}.accept_dad=0")
            if ns == ns_b and mac_b:
                iproute.ip("link", "set", name, "address", mac_b, netns=ns)
            if address:
                iproute.set_address(name, IPv4Interface(address), netns=ns)
            else:
                iproute.ip("link", "set", name, "up", netns=ns)
        return a, b

    def switch(self, *members: tuple[str, str | None, str | None],
               taps: int = 0) -> dict[str, str]:
        """One broadcast domain: a bridge in a hub namespace and, for each (namespace,
        address, mac) member, a veth into it. Returns each member's interface name.
        ``taps`` more ports are taps for QEMU, started in the hub (see :attr:`taps`)."""
        hub = self.netns("h")
        bridge = unique("nbbr")
        iproute.add_bridge(bridge, netns=hub)
        self.bridges[hub] = bridge
        names = {ns: self.plug(hub, ns, address, mac) for ns, address, mac in members}
        for _ in range(taps):
            tap = unique("nbtap")
            iproute.add_tap(tap, netns=hub)
            iproute.attach(tap, bridge, netns=hub)
            self.taps.append((hub, tap))
        return names

    def plug(self, hub: str, ns: str, address: str | None, mac: str | None = None,
             name: str | None = None) -> str:
        """A veth from ``ns`` into the switch in ``hub`` (again after its link was deleted:
        ``name`` is the name it had); returns its name in ``ns``."""
        port, inside = self.link(hub, ns, address_b=address, mac_b=mac, name_b=name)
        iproute.attach(port, self.bridges[hub], netns=hub)
        return inside

    def sysctl(self, ns: str, setting: str) -> None:
        self.run(ns, ["sysctl", "-q", "-w", setting])

    def run(self, ns: str, argv: list[str], timeout: float = 60, check: bool = True,
            **kw) -> subprocess.CompletedProcess:
        return subprocess.run(iproute.in_netns(ns, argv), capture_output=True,
                              timeout=timeout, check=check, **{"text": True, **kw})

    def spawn(self, ns: str, argv: list[str], log: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a long-running process in ``ns``, its output to ``log`` (``env``: more
        environment variables)."""
        out = log.open("ab")
        proc = subprocess.Popen(iproute.in_netns(ns, argv), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})})
        out.close()
        self.processes.append(proc)
        return proc

    def serve(self, ns: str, config: Path, log: Path, timeout: float = 30,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """``netboot serve`` in ``ns``; returns once it logs that it is serving."""
        start = log.stat().st_size if log.exists() else 0
        loaded = load_config(config)
        make_reachable(config, loaded.storage.state_dir, loaded.tftp_root_path,
                       loaded.kernel_path, loaded.initramfs_path)
        port = loaded.target.tgt_control_port
        assert port != 0, "a test's serve must not touch the host's tgtd (control port 0)"
        self.tgtd_ports.add(port)
        proc = self.spawn(ns, [sys.executable, "-m", "netboot", "--config", str(config),
                               "--log-level", "debug", "serve"], log, env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if SERVE_READY in log.read_text()[start:]:
                return proc
            if proc.poll() is not None:
                raise AssertionError(f"netboot serve exited {proc.returncode}:\n{log.read_text()}")
            time.sleep(0.1)
        raise AssertionError(f"netboot serve did not start:\n{log.read_text()}")

    def stop(self, proc: subprocess.Popen, timeout: float = 15) -> int:
        """SIGTERM the process group and wait; returns the exit status."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                self.stop(proc)
        for port in self.tgtd_ports:  # serve leaves tgtd running on purpose: clients live on it
            stop_tgtd(port)
            forget_control_port(port)
        for ns in self.namespaces:
            iproute.delete_netns(ns)


# A router solicitation from ``sys.argv[1]``; prints the first RA's M flag (0/1), router
# lifetime and source address.
SOLICIT_ROUTER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.settimeout(5)
s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, socket.if_nametoindex(sys.argv[1])))
while True:
    data, source = s.recvfrom(1500)
    if data[0] == 134:
        print(data[5] >> 7, data[6] << 8 | data[7], source[0])
        break
"""


def solicit_router(lab: Lab, ns: str, interface: str) -> tuple[int, int, str]:
    """The answer to a router solicitation from ``interface`` in ``ns``: the RA's M flag,
    its router lifetime and where it came from."""
    time.sleep(0.5)  # link-local addresses settle (DAD is off, but the route needs a moment)
    managed, lifetime, source = lab.run(ns, ["python3", "-c", SOLICIT_ROUTER, interface],
                                        timeout=20).stdout.split()
    return int(managed), int(lifetime), source


def write_config(path: Path, interface: str, workdir: Path, *, address: str = "198.18.0.1",
                 subnet: str = "198.18.0.0/24", extra: str = "") -> Path:
    path.write_text(
        f"server:\n  interface: {interface}\n  address: {address}\n"
        f"  tftp_root: {workdir / 'tftproot'}\n"
        f"storage:\n  state_dir: {workdir / 'state'}\n"
        # a tgtd of this test's own: serve starts one, NetLab.close() stops it
        f"target:\n  tgt_control_port: {free_control_port()}\n"
        f"dhcp:\n  subnet: {subnet}\n{extra}")
    return path

