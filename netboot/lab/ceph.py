"""A one-node Ceph cluster (one mon, one mgr, one BlueStore OSD on a sparse file) for the
lab, the demo and the tests, in a network namespace of its own: the "storage network".

Its consumers are the host (netboot's CLI opens RBD images with librbd in-process) and
processes in other namespaces (tgtd, started by `netboot serve` in the lab's boot VLAN).
A namespace cannot reach the host's loopback, so the cluster gets a namespace holding a
bridge with the cluster's address, its daemons run inside it bound to that address only,
and :func:`attach` plugs a consumer in with a veth pair (one end on the bridge, the other
in the consumer's namespace, or the host's) addressed from the same /24.

Consumers log in as ``client.netboot`` (rbd on the pool only) with the keyring and the
``ceph.conf`` written to the cluster dir: what netboot's ``storage.rbd`` points at.
Everything else lives in the cluster dir too: the admin keyring and conf, the daemons'
data, their logs and sockets (nothing goes to /var/log/ceph or /var/run/ceph).

As in :mod:`netboot.lab.topology`, the names come from one random prefix written to
``<dir>/cluster.json`` *before* anything is created, and each daemon's pid and each
attachment is recorded as it is made, so :func:`down` removes what a run killed at any
moment left. Setup talks to the mon with Ceph's own tools run inside the namespace
(``ip netns exec``), as the daemons are: the process calling :func:`up` lives in the
host's namespace, which reaches the cluster only once attached, and the rados binding
would tie setup to an attachment (or to a thread moved into the namespace). Three
commands need the mon (``ceph osd new``, ``ceph osd pool create``, ``rbd pool init``);
every key is made here and given to the mon at its birth (``ceph-mon --mkfs``), so no
``ceph auth`` round trips.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from netboot.host import iproute
from netboot.host.files import atomic_write, remove_stale_temps
from netboot.host.run import not_installed, run
from netboot.lab import procs, topology
from netboot.lab.topology import LabError
from netboot.templates import render

NAME_PREFIX = "nbc"  # nbcXXXXXX (namespace), nbcXXXXXX-br, nbcXXXXXX-cN / -aN (veth pairs)
STATE_FILE = "cluster.json"
CLUSTER_CONF = "cluster.conf"  # the daemons' and the admin tools' (client.admin)
CLIENT_CONF = "ceph.conf"  # the consumers' (client.netboot)
ADMIN_KEYRING = "ceph.client.admin.keyring"
CLIENT_ID = "netboot"
DATA_DIR = "data"
LOG_DIR = "logs"
# Everything up makes in the cluster dir besides the state file: down removes these names.
MADE = (CLUSTER_CONF, CLIENT_CONF, ADMIN_KEYRING, f"ceph.client.{CLIENT_ID}.keyring",
        "mon.keyring", "monmap", DATA_DIR, LOG_DIR)
# Storage networks: RFC 2544's benchmarking block, away from the boot VLANs (198.18.x).
# The first one no host route covers is taken, so two clusters can both reach the host.
SUBNETS = tuple(IPv4Network(f"198.19.{n}.0/24") for n in range(254, 239, -1))
MON_PORTS = (3300, 6789)  # msgr2 and msgr1: free by construction in a namespace of its own
OSD_SIZE = "10G"  # BlueStore's file: sparse, so it costs only what is written
MAX_ATTACHMENTS = 99  # keeps "<prefix>-c99" within the kernel's 15-character names
MON_TIMEOUT = 30.0  # seconds for the mon to answer its first command
OSD_TIMEOUT = 60.0  # seconds for the OSD to be active
# The programs up runs (Debian's ceph-mon, ceph-mgr, ceph-osd, ceph-common).
PROGRAMS = ("ceph-mon", "ceph-mgr", "ceph-osd", "monmaptool", "ceph", "rbd")
OSD_ACTIVE = "state: booting -> active"  # the OSD's log line once the mon has it up
# Who may do what. client.netboot: RBD images in its pool, and fencing (below).
ADMIN_CAPS = (("mds", "allow *"), ("mgr", "allow *"), ("mon", "allow *"), ("osd", "allow *"))
MGR_CAPS = (("mds", "allow *"), ("mon", "allow profile mgr"), ("osd", "allow *"))
OSD_CAPS = (("mgr", "allow profile osd"), ("mon", "allow profile osd"), ("osd", "allow *"))


# ``profile rbd`` may add blocklist entries (fencing), not remove them; a failover server
# returning lifts the fence on its own address (netboot.target.failover.fence).
LIFT_FENCE_CAP = "allow command 'osd blocklist' with blocklistop=rm"


def client_caps(pool: str) -> tuple[tuple[str, str], ...]:
    return (("mgr", f"profile rbd pool={pool}"), ("mon", f"profile rbd, {LIFT_FENCE_CAP}"),
            ("osd", f"profile rbd pool={pool}"))


class CephError(LabError):
    """The cluster cannot be set up, used or taken down; the message says what to do."""


@dataclass(frozen=True)
class Attachment:
    """A consumer's veth pair: ``link`` on the cluster's bridge, ``peer`` (with ``address``)
    in namespace ``netns`` (None: the host's)."""

    netns: str | None
    link: str
    peer: str
    address: IPv4Interface

    def to_json(self) -> dict[str, object]:
        return {"netns": self.netns, "link": self.link, "peer": self.peer,
                "address": str(self.address)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Attachment:
        netns = data["netns"]
        return cls(netns=None if netns is None else str(netns), link=str(data["link"]),
                   peer=str(data["peer"]), address=IPv4Interface(str(data["address"])))


@dataclass(frozen=True)
class Cluster:
    """One cluster: where it lives (dir, namespace, address), how consumers reach it
    (conf, pool, client id), its daemons' pids and its attachments."""

    directory: Path
    netns: str
    address: IPv4Interface  # the cluster's, on its bridge; consumers get the others
    fsid: str
    pool: str = "netboot"
    client_id: str = CLIENT_ID
    pids: Mapping[str, int] = field(default_factory=dict)  # "mon.a", "mgr.x", "osd.0"
    attachments: tuple[Attachment, ...] = ()

    @property
    def bridge(self) -> str:
        return f"{self.netns}-br"

    @property
    def conf(self) -> Path:
        """The consumers' ceph.conf (mon address, client.netboot's keyring)."""
        return self.directory / CLIENT_CONF

    @property
    def keyring(self) -> Path:
        """client.netboot's keyring (0600)."""
        return self.directory / f"ceph.client.{self.client_id}.keyring"

    @property
    def cluster_conf(self) -> Path:
        """The daemons' and admin tools' conf (client.admin), used inside the namespace."""
        return self.directory / CLUSTER_CONF

    @property
    def mon_host(self) -> str:
        v2, v1 = MON_PORTS
        return f"[v2:{self.address.ip}:{v2},v1:{self.address.ip}:{v1}]"

    @property
    def data(self) -> Path:
        return self.directory / DATA_DIR

    @property
    def logs(self) -> Path:
        return self.directory / LOG_DIR

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside the cluster's namespace."""
        return iproute.in_netns(self.netns, argv)

    def to_json(self) -> dict[str, object]:
        return {"netns": self.netns, "address": str(self.address), "fsid": self.fsid,
                "pool": self.pool, "client_id": self.client_id, "pids": dict(self.pids),
                "attachments": [a.to_json() for a in self.attachments]}

    @classmethod
    def from_json(cls, data: Mapping[str, object], directory: Path) -> Cluster:
        return cls(directory=directory, netns=str(data["netns"]),
                   address=IPv4Interface(str(data["address"])), fsid=str(data["fsid"]),
                   pool=str(data["pool"]), client_id=str(data["client_id"]),
                   pids={str(k): int(v) for k, v in data["pids"].items()},  # type: ignore[attr-defined]
                   attachments=tuple(Attachment.from_json(a)
                                     for a in data["attachments"]))  # type: ignore[attr-defined]


# -- pure decisions ---------------------------------------------------------------------


def route_over(subnet: IPv4Network, routes: Iterable[IPv4Network]) -> IPv4Network | None:
    """The first of ``routes`` that overlaps ``subnet``, the default route aside."""
    return next((r for r in routes if r.prefixlen > 0 and r.overlaps(subnet)), None)


def choose_subnet(routes: Iterable[IPv4Network]) -> IPv4Network:
    """The first of :data:`SUBNETS` that none of the host's ``routes`` overlaps."""
    routes = list(routes)
    for subnet in SUBNETS:
        if route_over(subnet, routes) is None:
            return subnet
    raise CephError(f"every storage network ({SUBNETS[-1]} to {SUBNETS[0]}) is routed on "
                    "this host already: take down clusters with 'netboot lab ceph down'")


def plan(directory: Path, subnet: IPv4Network, pool: str = "netboot") -> Cluster:
    """A new cluster's names and addresses (nothing is created): a random namespace name,
    the subnet's first address for the cluster, a fresh fsid."""
    return Cluster(directory=directory, netns=NAME_PREFIX + secrets.token_hex(3),
                   address=IPv4Interface(f"{next(subnet.hosts())}/{subnet.prefixlen}"),
                   fsid=str(uuid.uuid4()), pool=pool)


def next_attachment(cluster: Cluster, netns: str | None) -> Attachment:
    """The veth pair and address for a new consumer: the lowest free index and address."""
    used = {a.link for a in cluster.attachments}
    index = next((i for i in range(MAX_ATTACHMENTS + 1) if f"{cluster.netns}-c{i}" not in used),
                 None)
    taken = {cluster.address.ip, *(a.address.ip for a in cluster.attachments)}
    address = next((ip for ip in cluster.address.network.hosts() if ip not in taken), None)
    if index is None or address is None:
        raise CephError(f"the cluster in {cluster.directory} has no room for another "
                        f"consumer ({len(cluster.attachments)} attached)")
    return Attachment(netns=netns, link=f"{cluster.netns}-c{index}",
                      peer=f"{cluster.netns}-a{index}",
                      address=IPv4Interface(f"{address}/{cluster.address.network.prefixlen}"))


def cluster_conf(cluster: Cluster) -> str:
    """The daemons' and admin tools' ceph.conf."""
    return render("ceph-cluster.conf.j2", cluster_dir=cluster.directory, netns=cluster.netns,
                  address=cluster.address.ip, fsid=cluster.fsid, mon_host=cluster.mon_host,
                  data=cluster.data, logs=cluster.logs, osd_size=OSD_SIZE,
                  admin_keyring=cluster.directory / ADMIN_KEYRING)


def client_conf(cluster: Cluster) -> str:
    """The consumers' ceph.conf: where the mon is and client.netboot's keyring."""
    return render("ceph-client.conf.j2", cluster_dir=cluster.directory, client_id=cluster.client_id,
                  pool=cluster.pool, address=cluster.address.ip, fsid=cluster.fsid,
                  mon_host=cluster.mon_host, keyring=cluster.keyring)


def new_key(now: float | None = None) -> str:
    """A cephx secret as Ceph's tools print it: base64 of the key type (1, AES), its
    creation time (seconds, nanoseconds), its length (16) and 16 random bytes; made here
    (as ceph-deploy does) so no secret passes through another program's argv or stdout."""
    secret = secrets.token_bytes(16)
    header = struct.pack("<HIIH", 1, int(time.time() if now is None else now), 0, len(secret))
    return base64.b64encode(header + secret).decode()


def keyring(entities: Iterable[tuple[str, str, Sequence[tuple[str, str]]]]) -> str:
    """A keyring file: for each (entity, key, caps) a section with its key and caps."""
    sections = []
    for entity, key, caps in entities:
        lines = [f"[{entity}]", f"\tkey = {key}"]
        lines += [f'\tcaps {service} = "{cap}"' for service, cap in caps]
        sections.append("\n".join(lines) + "\n")
    return "".join(sections)


# -- state --------------------------------------------------------------------------------


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def load(directory: Path) -> Cluster | None:
    """The cluster recorded in ``directory``, or None if there is none."""
    path = state_path(directory)
    try:
        return Cluster.from_json(json.loads(path.read_text()), directory)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CephError(f"{path}: unreadable cluster state ({err}); stop the ceph-mon, "
                        f"ceph-mgr and ceph-osd whose command line names {directory}, remove "
                        f"the namespace named {NAME_PREFIX}... with 'ip netns delete', then "
                        "this file") from None


def _record(cluster: Cluster) -> None:
    """Write the state file atomically: a kill mid-write leaves the old file or the new one."""
    atomic_write(state_path(cluster.directory),
                 (json.dumps(cluster.to_json(), indent=2) + "\n").encode(), 0o644)


def _require(directory: Path) -> Cluster:
    cluster = load(directory)
    if cluster is None:
        raise CephError(f"no Ceph cluster is up in {directory}: start one with "
                        f"'netboot lab ceph up --dir {directory}'")
    return cluster


# -- up -----------------------------------------------------------------------------------


def _ceph(cluster: Cluster, *args: str, what: str) -> str:
    """A Ceph admin tool (``ceph``, ``rbd``) as client.admin inside the namespace."""
    return run(cluster.argv([args[0], "--conf", str(cluster.cluster_conf), *args[1:]]),
               what=what, error=CephError)


def _write_keys(cluster: Cluster) -> None:
    """Every entity's key: all of them in the mon's initial keyring (``ceph-mon --mkfs``
    imports it), each also where its user reads it. All files 0600."""
    keys = {name: new_key() for name in ("mon.", "client.admin", "mgr.x", "osd.0",
                                         f"client.{cluster.client_id}")}
    caps = {"mon.": (("mon", "allow *"),), "client.admin": ADMIN_CAPS, "mgr.x": MGR_CAPS,
            "osd.0": OSD_CAPS, f"client.{cluster.client_id}": client_caps(cluster.pool)}
    everyone = [(name, key, caps[name]) for name, key in keys.items()]
    atomic_write(cluster.directory / "mon.keyring", keyring(everyone).encode())
    for name, path in (("client.admin", cluster.directory / ADMIN_KEYRING),
                       ("mgr.x", cluster.data / "mgr" / "ceph-x" / "keyring"),
                       ("osd.0", cluster.data / "osd" / "ceph-0" / "keyring"),
                       (f"client.{cluster.client_id}", cluster.keyring)):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, keyring([(name, keys[name], caps[name])]).encode())


def _start(cluster: Cluster, name: str, argv: Sequence[str]) -> procs.LabProcess:
    """Start daemon ``name`` in the foreground inside the namespace; its pid goes on record
    before anything else happens."""
    daemon = procs.start(cluster, name, [*argv, "-f", "--conf", str(cluster.cluster_conf)],
                         cluster.logs, settle=0)
    current = _require(cluster.directory)
    _record(replace(current, pids={**current.pids, name: daemon.pid}))
    return daemon


def _wait_active(osd: procs.LabProcess, log: Path, timeout: float = OSD_TIMEOUT) -> None:
    """Until the OSD logs that the mon marked it up (a client started before re-reads the
    osdmap only every 5 s, so ``rbd pool init`` waits for this)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(FileNotFoundError):
            if OSD_ACTIVE in log.read_text(errors="replace"):
                return
        osd.check_running()
        time.sleep(0.05)
    raise CephError(f"osd.0 was not active within {timeout:.0f} s: {procs.tail(log)} "
                    f"(log: {log})")


def up(directory: Path, *, pool: str = "netboot",
       say: Callable[[str], None] = print) -> Cluster:
    """Make a cluster in ``directory`` and leave it running; on any failure or Ctrl-C
    nothing of it is left. ``say`` hears each step with the seconds since the start."""
    started = time.monotonic()

    def step(what: str) -> None:
        say(f"[{time.monotonic() - started:5.1f} s] {what}")

    for program in PROGRAMS:  # a daemon missing would show only as a mon that never answers
        if shutil.which(program) is None:
            raise CephError(not_installed(program))
    directory.mkdir(parents=True, exist_ok=True)
    if load(directory) is not None:
        raise CephError(f"a Ceph cluster is already up in {directory}; "
                        f"'netboot lab ceph down --dir {directory}' removes it")
    if any(directory.iterdir()):
        raise CephError(f"{directory} is not empty: a cluster is made in an empty directory")
    cluster = plan(directory, choose_subnet(iproute.ipv4_routes()), pool)
    with topology.signals_interrupt():
        _record(cluster)  # before anything is created: down follows it after a kill
        try:
            iproute.add_netns(cluster.netns)
            iproute.add_bridge(cluster.bridge, cluster.address, netns=cluster.netns)
            step(f"storage network: namespace {cluster.netns}, bridge {cluster.bridge} "
                 f"{cluster.address}")
            for sub in ("run", "crash", "mon/ceph-a"):
                (cluster.data / sub).mkdir(parents=True, exist_ok=True)
            cluster.logs.mkdir(parents=True, exist_ok=True)
            atomic_write(cluster.cluster_conf, cluster_conf(cluster).encode(), 0o644)
            atomic_write(cluster.conf, client_conf(cluster).encode(), 0o644)
            _write_keys(cluster)
            mon_keyring, monmap = directory / "mon.keyring", directory / "monmap"
            run(["monmaptool", "--create", "--addv", "a", cluster.mon_host, "--fsid",
                 cluster.fsid, str(monmap)], what="monmaptool", error=CephError)
            run(["ceph-mon", "--conf", str(cluster.cluster_conf), "--mkfs", "-i", "a",
                 "--monmap", str(monmap), "--keyring", str(mon_keyring)],
                what="ceph-mon --mkfs", error=CephError)
            mon_keyring.unlink()  # the mon has every key now; one copy of the secrets less
            monmap.unlink()
            mon = _start(cluster, "mon.a", ["ceph-mon", "-i", "a"])
            step(f"ceph-mon running (pid {mon.pid})")
            osd_uuid = str(uuid.uuid4())
            _ceph(cluster, "ceph", "--connect-timeout", str(int(MON_TIMEOUT)), "osd", "new",
                  osd_uuid, "0", what="ceph osd new")
            step("mon answers, osd.0 made")
            _ceph(cluster, "ceph", "osd", "pool", "create", pool, what="ceph osd pool create")
            run(cluster.argv(["ceph-osd", "--conf", str(cluster.cluster_conf), "-i", "0",
                              "--mkfs", "--osd-uuid", osd_uuid]),
                what="ceph-osd --mkfs", error=CephError)
            step(f"pool {pool} made, osd.0's BlueStore made ({OSD_SIZE} sparse)")
            osd = _start(cluster, "osd.0", ["ceph-osd", "-i", "0"])
            _wait_active(osd, cluster.logs / "ceph-osd.0.log")
            step(f"ceph-osd active (pid {osd.pid})")
            _ceph(cluster, "rbd", "pool", "init", pool, what="rbd pool init")
            # last and not waited for: RBD I/O does not need it (Ceph expects one, and
            # `ceph health` warns without it)
            mgr = _start(cluster, "mgr.x", ["ceph-mgr", "-i", "x"])
            step(f"rbd pool init done; ceph-mgr started (pid {mgr.pid})")
            cluster = _require(directory)
            step(f"cluster up: pool {pool}, client.{cluster.client_id}, conf {cluster.conf}")
            return cluster
        except BaseException:
            with topology.signals_deferred():
                down(directory)
            raise


# -- consumers ----------------------------------------------------------------------------


def attach(cluster: Cluster, netns: str | None) -> IPv4Interface:
    """Connect namespace ``netns`` (None: the host) to the cluster; its address there.

    Attaching a namespace that is attached already returns its address. A record
    whose link is gone (its namespace was deleted) is dropped first.
    """
    current = _require(cluster.directory)
    live = tuple(a for a in current.attachments if iproute.link_exists(a.link, current.netns))
    current = replace(current, attachments=live)
    if (same := next((a for a in live if a.netns == netns), None)) is not None:
        return same.address
    if netns is None and (route := route_over(current.address.network,
                                              iproute.ipv4_routes())) is not None:
        raise CephError(f"the host already routes {route}, the storage network of the "
                        f"cluster in {cluster.directory}: is another cluster attached to it?")
    attachment = next_attachment(current, netns)
    _record(replace(current, attachments=(*live, attachment)))  # before it exists
    try:
        iproute.add_veth(attachment.link, attachment.peer, netns=current.netns,
                         peer_netns=netns)
        iproute.attach(attachment.link, current.bridge, netns=current.netns)
        iproute.set_address(attachment.peer, attachment.address, netns=netns)
    except BaseException:
        detach(current, netns)
        raise
    return attachment.address


def detach(cluster: Cluster, netns: str | None) -> bool:
    """Disconnect ``netns`` (None: the host); False if it was not attached."""
    current = load(cluster.directory)
    if current is None:
        return False
    found = [a for a in current.attachments if a.netns == netns]
    for attachment in found:
        # the pair goes with either end; its peer may be gone with its namespace already
        iproute.ip("link", "delete", attachment.link, netns=current.netns, check=False)
    _record(replace(current, attachments=tuple(a for a in current.attachments
                                               if a.netns != netns)))
    return bool(found)


# -- down ---------------------------------------------------------------------------------


def processes_naming(needle: str) -> list[int]:
    """The processes (this one aside) whose command line or working directory contains
    ``needle`` (a cluster's directory or namespace name: random, so only its own match)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone, or a kernel thread
            continue
        if needle.encode() in cmdline or needle in cwd:
            found.append(int(entry.name))
    return found


def down(directory: Path) -> bool:
    """Stop and remove the cluster recorded in ``directory`` (a killed run's too): its
    daemons by pid (OSD and mgr before the mon, which they report to on the way out),
    anything else left in its namespace, the namespace with its bridge and every veth,
    and its files. False if there was nothing to remove."""
    cluster = load(directory)
    if cluster is None:
        return False
    if cluster.netns in iproute.netns_names():
        inside = set(iproute.netns_pids(cluster.netns))  # a recorded pid may be reused
        for group in (("osd.0", "mgr.x"), ("mon.a",)):
            topology.stop([pid for name, pid in cluster.pids.items()
                           if name in group and pid in inside])
    # What a killed up left running besides its daemons: the tool it was waiting for
    # (`ip netns add`, a mkfs, a daemon started but not yet on record).
    topology.stop(processes_naming(str(directory)) + processes_naming(cluster.netns))
    if cluster.netns in iproute.netns_names():
        topology.stop_processes(cluster.netns)
        # Each pair first, at once: the kernel tears a deleted namespace's links down
        # later, and a host end could outlive down for a moment.
        for attachment in cluster.attachments:
            iproute.ip("link", "delete", attachment.link, netns=cluster.netns, check=False)
        iproute.delete_netns(cluster.netns)
        if cluster.netns in iproute.netns_names():
            raise CephError(f"namespace {cluster.netns} could not be deleted; "
                            f"'ip netns pids {cluster.netns}' shows what still holds it")
    for name in MADE:
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    state_path(directory).unlink()
    # A file up was writing when it was killed: left under its temporary name.
    remove_stale_temps(directory, of=(*MADE, STATE_FILE))
    with suppress(OSError):
        directory.rmdir()  # only if empty: it may hold the user's own files
    return True


# -- status -------------------------------------------------------------------------------


def running(cluster: Cluster) -> dict[str, bool]:
    """Each recorded daemon, and whether it is still running in the namespace."""
    inside = (set(iproute.netns_pids(cluster.netns))
              if cluster.netns in iproute.netns_names() else set())
    return {name: pid in inside for name, pid in cluster.pids.items()}


def health(cluster: Cluster) -> str:
    """``ceph health``'s line (HEALTH_OK, HEALTH_WARN ...), or why there is none."""
    if not running(cluster).get("mon.a"):
        return "mon not running"
    try:
        return _ceph(cluster, "ceph", "--connect-timeout", "5", "health",
                     what="ceph health").strip()
    except CephError as err:
        return str(err)


def status(directory: Path) -> dict[str, object]:
    """The cluster in ``directory`` for people and scripts: where it is, how consumers
    reach it (netboot's storage.rbd), its daemons, its consumers and its health."""
    cluster = _require(directory)
    alive = running(cluster)
    return {"dir": str(cluster.directory), "netns": cluster.netns,
            "address": str(cluster.address.ip), "mon_host": cluster.mon_host,
            "pool": cluster.pool, "ceph_conf": str(cluster.conf),
            "client_id": cluster.client_id, "keyring": str(cluster.keyring),
            "health": health(cluster),
            "daemons": [{"name": name, "pid": pid, "running": alive[name]}
                        for name, pid in cluster.pids.items()],
            "attachments": [{"netns": a.netns, "address": str(a.address.ip)}
                            for a in cluster.attachments]}
