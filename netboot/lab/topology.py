"""The lab's boot VLAN: a network namespace holding a bridge (the server's side) and one tap per VM.

Nothing of it touches the host's own interfaces: the namespace is new, the
bridge and taps live inside it, and QEMU is started inside it too (a tap
can only be opened from its own namespace). The names come from one random
prefix written to ``<lab dir>/topology.json`` *before* anything is created,
so a run killed at any moment leaves a record that :func:`down` follows.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface
from pathlib import Path

from netboot.errors import NetbootError
from netboot.host import iproute
from netboot.host.files import atomic_write

NAME_PREFIX = "nbl"  # every lab name starts with it: nblXXXXXX, nblXXXXXX-br, nblXXXXXX-t0
STATE_FILE = "topology.json"
# RFC 2544's benchmarking block (198.18.0.0/15): never routed, never a real network's.
BOOT_VLAN = IPv4Interface("198.18.0.1/24")
# An IPv6-only lab's bridge (a ULA inside the namespace); BOOT_VLAN then names the clients
# in the inventory (netboot.config.Dhcp6Config) and its server address is on the
# namespace's loopback only, for the lab's BMCs: no IPv4 on the VLAN.
BOOT_VLAN6 = IPv6Interface("fd4e:6574:626f:1::1/64")
MAX_TAPS = 100  # keeps "<prefix>-t99" within the kernel's 15-character interface names
STOP_GRACE = 5.0  # seconds a process in the namespace gets between SIGTERM and SIGKILL


class LabError(NetbootError):
    """The lab cannot be set up, used or taken down; the message says what to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwound like Ctrl-C so every cleanup runs."""


@dataclass(frozen=True)
class Topology:
    """One boot VLAN: namespace, bridge (with the server's address) and taps, by name."""

    netns: str
    bridge: str
    taps: tuple[str, ...]
    address: IPv4Interface
    lab_dir: Path
    ipv6: IPv6Interface | None = None  # an IPv6-only VLAN: the bridge has this, no IPv4

    @property
    def server(self) -> IPv4Address:
        """The server's address on the VLAN (the bridge's)."""
        return self.address.ip

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside the namespace."""
        return iproute.in_netns(self.netns, argv)

    def to_json(self) -> dict[str, object]:
        return {"netns": self.netns, "bridge": self.bridge, "taps": list(self.taps),
                "address": str(self.address),
                "ipv6": str(self.ipv6) if self.ipv6 is not None else None}

    @classmethod
    def from_json(cls, data: dict[str, object], lab_dir: Path) -> Topology:
        return cls(netns=str(data["netns"]), bridge=str(data["bridge"]),
                   taps=tuple(str(t) for t in data["taps"]),  # type: ignore[attr-defined]
                   address=IPv4Interface(str(data["address"])), lab_dir=lab_dir,
                   ipv6=IPv6Interface(str(data["ipv6"])) if data.get("ipv6") else None)


def plan(lab_dir: Path, taps: int, address: IPv4Interface = BOOT_VLAN,
         ipv6: IPv6Interface | None = None) -> Topology:
    """Fresh, unique names for a VLAN with ``taps`` taps (nothing is created)."""
    if not 0 <= taps <= MAX_TAPS:
        raise LabError(f"a lab has 0 to {MAX_TAPS} VM taps, not {taps}")
    prefix = NAME_PREFIX + secrets.token_hex(3)
    return Topology(netns=prefix, bridge=f"{prefix}-br",
                    taps=tuple(f"{prefix}-t{i}" for i in range(taps)),
                    address=address, lab_dir=lab_dir, ipv6=ipv6)


def state_path(lab_dir: Path) -> Path:
    return lab_dir / STATE_FILE


def load(lab_dir: Path) -> Topology | None:
    """The VLAN recorded in ``lab_dir``, or None if there is none."""
    path = state_path(lab_dir)
    try:
        data = json.loads(path.read_text())
        return Topology.from_json(data, lab_dir)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        raise LabError(f"{path}: unreadable lab state ({err}); remove the namespace named "
                       f"{NAME_PREFIX}... with 'ip netns delete' and then this file") from None


def _record(topology: Topology) -> None:
    """Write the state file atomically: a kill mid-write leaves the old file or the new one."""
    path = state_path(topology.lab_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(topology.to_json(), indent=2) + "\n").encode(), 0o644)


def create(lab_dir: Path, taps: int, address: IPv4Interface = BOOT_VLAN,
           ipv6: IPv6Interface | None = None) -> Topology:
    """Make a new VLAN in ``lab_dir``; on any failure nothing of it is left."""
    existing = load(lab_dir)
    if existing is not None:
        raise LabError(f"{lab_dir} already holds a lab (namespace {existing.netns}); "
                       f"take it down first with 'netboot lab down --dir {lab_dir}'")
    topology = plan(lab_dir, taps, address, ipv6)
    _record(topology)
    try:
        iproute.add_netns(topology.netns)
        iproute.add_bridge(topology.bridge, topology.ipv6 or topology.address,
                           netns=topology.netns)
        if topology.ipv6 is not None:  # the BMCs' address, on the namespace's loopback only
            iproute.ip("addr", "add", f"{topology.server}/32", "dev", "lo", netns=topology.netns)
            iproute.ip("link", "set", "lo", "up", netns=topology.netns)
        for tap in topology.taps:
            iproute.add_tap(tap, netns=topology.netns)
            iproute.attach(tap, topology.bridge, netns=topology.netns)
    except BaseException:
        destroy(topology)
        raise
    return topology


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has no namespace link any more and counts as gone)."""
    try:
        os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return True


def stop(pids: Sequence[int], grace: float = STOP_GRACE) -> None:
    """SIGTERM ``pids``, SIGKILL those still there after ``grace`` s; back once all are gone
    (or a second grace period has passed)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)


def stop_processes(netns: str, grace: float = STOP_GRACE) -> list[int]:
    """SIGTERM every process in ``netns``, SIGKILL those still there after ``grace`` s.

    Returns the pids found. SIGKILL is the fallback, not the plan: services
    that need an orderly stop (tgtd ignores SIGTERM) are stopped by their
    owners before this sweep.
    """
    pids = iproute.netns_pids(netns)
    stop(pids, grace)
    return pids


def destroy(topology: Topology) -> None:
    """Stop what runs in the namespace, delete it (bridge and taps go with it), forget it."""
    stop_processes(topology.netns)
    iproute.delete_netns(topology.netns)
    if topology.netns in iproute.netns_names():
        raise LabError(f"namespace {topology.netns} could not be deleted; "
                       f"'ip netns pids {topology.netns}' shows what still holds it")
    state_path(topology.lab_dir).unlink(missing_ok=True)


def down(lab_dir: Path) -> Topology | None:
    """Remove the lab recorded in ``lab_dir`` (a crashed run's too); None if there was none."""
    topology = load(lab_dir)
    if topology is not None:
        destroy(topology)
    return topology


_CLEANUP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"signal {signal.Signals(signum).name}")


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within: Ctrl-C, SIGTERM and SIGHUP unwind the stack, so ``finally`` blocks run.

    SIGINT is set to Python's KeyboardInterrupt explicitly: whatever handler
    was installed before (``netboot.serve.supervise.run`` installs its own) does not
    decide whether the lab gets cleaned up.
    """
    handlers = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_terminated,
                signal.SIGHUP: _raise_terminated}
    previous = {s: signal.signal(s, handler) for s, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Within: Ctrl-C and SIGTERM wait, so a second Ctrl-C cannot cut a cleanup short.

    They are delivered (and raise) as soon as the block ends. Processes
    started within inherit the mask, so start only short-lived ones here.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _CLEANUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def boot_vlan(lab_dir: Path, taps: int,
              address: IPv4Interface = BOOT_VLAN) -> Iterator[Topology]:
    """A VLAN for the length of a ``with`` block: removed on exit, on error, on Ctrl-C/SIGTERM."""
    with signals_interrupt():
        topology = create(lab_dir, taps, address)
        try:
            yield topology
        finally:
            with signals_deferred():
                destroy(topology)
