"""A real simulated BMC for tests: OpenIPMI's ipmi_sim in a network namespace of its own,
reached from the host over a veth pair (198.18.x.y/30, a subnet the host does not route),
as a server reaches its machines' BMCs on a management network.

Its chassis_control is a trivial script keeping the power and boot device in files and
logging each call, or none at all (then ipmi_sim refuses ``chassis bootdev``).
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from netboot.host import iproute
from netboot.lab.bmc import sim_argv, sim_config, write_sim
from netboot.lab.ceph import route_over
from netboot.power.bmc import Bmc
from tests.support.netlab import unique

CONTROL = """#!/bin/sh
# chassis_control: "get power boot" / "set power 1 boot pxe" / "set shutdown 1" (soft: off
# at once, unless a file "deaf" is there); state in files beside it
D=$(dirname "$0")
echo "$*" >> "$D/calls.log"
op=$1; shift
if [ "$op" = get ]; then
  for p in "$@"; do
    case $p in
      power) echo "power:$(cat "$D/power" 2>/dev/null || echo 0)" ;;
      boot) echo "boot:$(cat "$D/boot" 2>/dev/null || echo default)" ;;
    esac
  done
  exit 0
fi
while [ $# -ge 2 ]; do
  case $1 in
    power) echo "$2" > "$D/power" ;;
    shutdown) [ -e "$D/deaf" ] || echo 0 > "$D/power" ;;  # an OS that obeys, unless deaf
    boot) echo "$2" > "$D/boot" ;;
  esac
  shift 2
done
"""


@dataclass(frozen=True)
class SimulatedBmc:
    bmc: Bmc  # how to reach it, with its password
    directory: Path

    def calls(self) -> list[str]:
        """The chassis_control calls ipmi_sim made, in order."""
        log = self.directory / "calls.log"
        return log.read_text().splitlines() if log.exists() else []


def _free_subnet() -> IPv4Network:
    routes = iproute.ipv4_routes()
    for _ in range(100):
        subnet = IPv4Network(f"198.18.{random.randrange(128, 255)}.{4 * random.randrange(64)}/30")
        if route_over(subnet, routes) is None:
            return subnet
    raise AssertionError("no free /30 in 198.18.128.0/17 on this host")


@contextmanager
def management_network() -> Iterator[tuple[str, IPv4Interface]]:
    """A namespace joined to the host by a veth pair; yields it and its end's address."""
    netns, host_end, inside = unique("nbbmc"), unique("nbvb"), unique("nbvb")
    subnet = _free_subnet()
    first, second = list(subnet.hosts())
    iproute.add_netns(netns)
    try:
        iproute.add_veth(host_end, inside, netns=None, peer_netns=netns)
        iproute.set_address(host_end, IPv4Interface(f"{first}/{subnet.prefixlen}"))
        address = IPv4Interface(f"{second}/{subnet.prefixlen}")
        iproute.set_address(inside, address, netns=netns)
        yield netns, address
    finally:
        iproute.ip("link", "delete", host_end, check=False)
        iproute.delete_netns(netns)


@contextmanager
def simulated_bmc(netns: str, address: IPv4Interface, directory: Path, password: str, *,
                  port: int = 623, control: bool = True) -> Iterator[SimulatedBmc]:
    """ipmi_sim in ``netns`` on ``address``:``port`` with user admin and ``password``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "control.sh"
    script.write_text(CONTROL)
    script.chmod(0o755)
    write_sim(directory, sim_config(name="test-bmc", mac="-", address=address.ip, port=port,
                                    password=password, control=str(script) if control else None))
    with (directory / "sim.log").open("wb") as log:
        proc = subprocess.Popen(iproute.in_netns(netns, sim_argv(directory)),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_listening(netns, port, proc, directory / "sim.log", tcp=False)
        yield SimulatedBmc(Bmc(str(address.ip), "admin", password, port), directory)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM ``proc``, SIGKILL if it lingers 5 s, and reap it."""
    proc.terminate()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_listening(netns: str, port: int, proc: subprocess.Popen, log: Path, *,
                   tcp: bool) -> None:
    """Until ``proc`` (its output in ``log``) listens on ``port`` in ``netns`` (TCP, or UDP)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args} exited: {log.read_text()}"
        listening = subprocess.run(
            iproute.in_netns(netns, ["ss", "-Hltn" if tcp else "-Hlun", f"sport = :{port}"]),
            capture_output=True, text=True, check=True).stdout
        if listening.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"{proc.args} did not listen on port {port}: {log.read_text()}")


@contextmanager
def processes_watched(needle: bytes) -> Iterator[ProcessWatch]:
    """Every process's argv and environment read over and over in a thread while the block
    runs: which held ``needle`` (a password), and which programs were seen."""
    watch, stop = ProcessWatch(), threading.Event()
    scanner = threading.Thread(target=_scan, args=(needle, stop, watch))
    scanner.start()
    try:
        yield watch
    finally:
        stop.set()
        scanner.join()


@dataclass
class ProcessWatch:
    leaks: list[tuple[str, str, bytes]] = field(default_factory=list)  # pid, file, its start
    programs: Counter[str] = field(default_factory=Counter)  # argv[0]: times seen


def _scan(needle: bytes, stop: threading.Event, watch: ProcessWatch) -> None:
    while not stop.is_set():
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            for part in ("cmdline", "environ"):
                try:
                    data = Path(entry.path, part).read_bytes()
                except OSError:
                    continue
                if needle in data:
                    watch.leaks.append((entry.name, part, data[:200]))
                if part == "cmdline" and data:
                    watch.programs[data.split(b"\0")[0].decode(errors="replace")] += 1
