"""`netboot lab up | boot | down` as functions: a whole boot VLAN with netboot serving N clients.

``up`` makes the VLAN, copies Debian's boot loaders into the lab's TFTP
root, prepares the boot files with the real CLI (subprocesses with the
lab's own config file: kernel fetch, initramfs build, image build),
starts ``netboot serve`` inside the VLAN (serve starts tgtd there),
registers the clients (client add), and leaves it all running; ``boot``
starts the clients' VMs and follows them; ``down`` stops and removes
everything, also after a crash. What ``up`` started is recorded in
``<lab dir>/lab.json`` (and the VLAN's names in topology.json) as it goes.

With ``storage`` ceph the golden image and the clients' roots are RBD images
on a one-node Ceph cluster (:mod:`netboot.lab.ceph`): the lab's own, made in
``<lab dir>/ceph`` and taken down with the lab, or one given (or already up
there, from `netboot lab ceph up`), which ``down`` leaves as ``up`` found it
(the lab's roots and golden image removed, the lab detached). The lab's
namespace is attached (serve and tgtd run there) and the host (CLI steps run there).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from ipaddress import IPv4Interface
from pathlib import Path
from typing import TextIO

from netboot.arch import Arch
from netboot.boot.loaders import populate
from netboot.config import ROOT_USER, SERVICE_USER, Config, RbdConfig
from netboot.configfile import load_config
from netboot.errors import NetbootError
from netboot.host.files import atomic_write
from netboot.host.users import blocking_directory, service_user
from netboot.inventory.store import Inventory, open_inventory
from netboot.lab import bmc, ceph, procs, topology
from netboot.lab.progress import Board, ClientProgress
from netboot.lab.topology import LabError, Topology
from netboot.lab.vm import (
    Accel,
    Firmware,
    VmFactory,
    VmSpec,
    VmTimeout,
    choose_accel,
    lab_mac,
)
from netboot.lab.watch import watch
from netboot.serve.service import SERVE_READY
from netboot.storage.backend import open_storage
from netboot.storage.location import Location, Store
from netboot.target.tgtd import free_control_port, stop_tgtd
from netboot.templates import render

STATE_FILE = "lab.json"
CONFIG_FILE = "netboot.yaml"
HTTP_PORT = 8080
BOOT_TIMEOUT = 300.0  # seconds for every client to reach its root (TCG, several VMs at once)
ROOT_GRACE = 30.0  # seconds a client that reached its root gets to finish and power off
IMAGE = "builtin"  # the golden image every lab client's root is cloned from
CEPH_DIR = "ceph"  # the lab's own cluster, in the lab dir (where `lab ceph up` puts one too)


class LabStorage(StrEnum):
    """Where a lab keeps its golden image and its clients' roots (``lab up --storage``)."""

    FILE = "file"  # files in the lab's state dir
    CEPH = "ceph"  # RBD images on a one-node Ceph cluster


@dataclass(frozen=True)
class LabClient:
    name: str
    mac: str


@dataclass(frozen=True)
class LabCeph:
    """The Ceph cluster a lab's roots live on, as ``down`` needs it: its dir, whether the
    lab made it (then it goes with the lab) or was given it (then only what the lab
    attached goes), and the namespaces the lab attaches (None: the host)."""

    directory: str
    made: bool
    attached: tuple[str | None, ...]

    @classmethod
    def from_json(cls, data: dict) -> LabCeph:
        return cls(directory=data["directory"], made=bool(data["made"]),
                   attached=tuple(data["attached"]))


@dataclass(frozen=True)
class LabState:
    """What ``up`` made besides the VLAN: config, clients, processes, how VMs run."""

    config: str
    clients: tuple[LabClient, ...]
    accel: str
    tgt_control_port: int
    pids: dict[str, int]
    ceph: LabCeph | None = None  # storage ceph: the cluster, recorded before it is made
    arch: str = Arch.AMD64.value  # the clients' architecture (what `up` prepared)

    @property
    def lab_dir(self) -> Path:
        return Path(self.config).parent  # the config file lives in the lab dir

    @classmethod
    def from_json(cls, data: dict) -> LabState:
        return cls(config=data["config"], accel=data["accel"],
                   clients=tuple(LabClient(**c) for c in data["clients"]),
                   tgt_control_port=int(data["tgt_control_port"]), pids=dict(data["pids"]),
                   ceph=LabCeph.from_json(data["ceph"]) if data.get("ceph") else None,
                   arch=data.get("arch", Arch.AMD64.value))


def default_lab_dir() -> Path:
    """$NETBOOT_LAB_DIR, or lab-state/ in the current directory."""
    return Path(os.environ.get("NETBOOT_LAB_DIR", "lab-state")).resolve()


def _save(lab_dir: Path, state: LabState) -> None:
    atomic_write(lab_dir / STATE_FILE, (json.dumps(asdict(state), indent=2) + "\n").encode(),
                 0o644)


def load_state(lab_dir: Path) -> LabState:
    path = lab_dir / STATE_FILE
    try:
        return LabState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise LabError(f"no lab is up in {lab_dir}: start one with 'netboot lab up'") from None
    except (ValueError, KeyError, TypeError) as err:
        raise LabError(f"{path}: unreadable lab state ({err}); "
                       f"'netboot lab down --dir {lab_dir}' removes the lab") from None


def write_config(topology: Topology, tgt_control_port: int, loader: str, lun_size: str,
                 kernel_flavour: str, cache_dir: Path, unknown: str = "ignore",
                 discovery_auth: bool = True, rbd: RbdConfig | None = None) -> Path:
    """The lab's netboot.yaml: the server on the VLAN's bridge, all state in the lab dir.

    Downloads go to ``cache_dir``, which may be shared between labs. With ``rbd``
    images and roots live in that pool (``storage.backend: rbd``), else in the lab dir.
    """
    path = topology.lab_dir / CONFIG_FILE
    # 0644 whatever the umask (the CLI's is 077): serve's network part, run as another
    # user, reads it too; it holds no secret (the Ceph keyring is a file of its own)
    atomic_write(path, render(
        "lab.yaml.j2", today=time.strftime("%Y-%m-%d"), lab_dir=topology.lab_dir,
        netns=topology.netns, bridge=topology.bridge, address=topology.server,
        http_port=HTTP_PORT, subnet=topology.address.network, iqn_month=time.strftime("%Y-%m"),
        tgt_control_port=tgt_control_port, state_dir=topology.lab_dir / "state",
        cache_dir=cache_dir, lun_size=lun_size, unknown=unknown, loader=loader,
        kernel_flavour=kernel_flavour, discovery_auth=discovery_auth, rbd=rbd,
        user=serve_user(topology.lab_dir), ipv6=topology.ipv6).encode(), 0o644)
    load_config(path)  # the lab's own file must pass the same checks as a user's
    return path


def serve_user(lab_dir: Path) -> str:
    """Who runs the lab's network part: netboot's service user when it exists and can
    reach the lab dir; root for a lab in a private directory (a test's tmp_path)."""
    try:
        user = service_user(SERVICE_USER)
    except NetbootError:
        return ROOT_USER
    return ROOT_USER if blocking_directory(lab_dir, user) is not None else user.name


def netboot_argv(config: Path, *args: str) -> list[str]:
    """The real `netboot` CLI with the lab's config (this interpreter, this package)."""
    return [sys.executable, "-m", "netboot", "--config", str(config), *args]


def prepare_steps(arch: Arch) -> tuple[tuple[str, ...], ...]:
    """The boot files a lab of ``arch`` machines needs, made with the real CLI in this
    order: the kernel package (vmlinuz and modules), the initramfs built from it, the
    golden image (its busybox of that architecture too)."""
    return (("kernel", "fetch", "--arch", arch.value),
            ("initramfs", "build", "--arch", arch.value),
            ("image", "build", IMAGE, "--builtin", "--arch", arch.value))


def start_serve(topology: Topology, config_path: Path, log_dir: Path) -> procs.LabProcess:
    """`netboot serve` inside the VLAN (it starts tgtd there too); returns once it serves."""
    serve = procs.start(topology, "netboot-serve", netboot_argv(config_path, "serve"), log_dir,
                        settle=1.0)
    procs.wait_for_log(serve, SERVE_READY, timeout=60)
    return serve


def plan_ceph(own: Path, given: ceph.Cluster | None, netns: str) -> LabCeph:
    """What a lab on Ceph does: without a ``given`` cluster, make its own in ``own`` and
    attach its namespace ``netns`` and the host; with one, attach ``netns``, and the host
    unless it is attached already (then it stays so after the lab)."""
    if given is None:
        return LabCeph(str(own), made=True, attached=(netns, None))
    host_attached = any(a.netns is None for a in given.attachments)
    return LabCeph(str(given.directory), made=False,
                   attached=(netns,) if host_attached else (netns, None))


def rbd_config(cluster: ceph.Cluster) -> RbdConfig:
    """netboot's ``storage.rbd`` for ``cluster``: its pool, consumers' conf and client id."""
    return RbdConfig(pool=cluster.pool, ceph_conf=cluster.conf, client_id=cluster.client_id)


def _ceph_given(lab_dir: Path, ceph_dir: Path | None) -> ceph.Cluster | None:
    """The cluster a lab on Ceph uses rather than make: ``ceph_dir``'s (which must be up),
    or one already up in the lab's ceph/ (made by `netboot lab ceph up`)."""
    if ceph_dir is None:
        return ceph.load(lab_dir / CEPH_DIR)
    given = ceph.load(ceph_dir)
    if given is None:
        raise LabError(f"no Ceph cluster is up in {ceph_dir}: start one with "
                       f"'netboot lab ceph up --dir {ceph_dir}', or leave the lab to make its own")
    return given


def _ceph_up(record: LabCeph, say: Callable[[str], None]) -> ceph.Cluster:
    """Make the lab's cluster if it is the lab's own, then attach what ``record`` says."""
    directory = Path(record.directory)
    cluster = ceph.up(directory, say=say) if record.made else ceph.load(directory)
    if cluster is None:
        raise LabError(f"the Ceph cluster in {directory} is gone")
    for netns in record.attached:
        address = ceph.attach(cluster, netns)
        say(f"Ceph cluster in {directory} reachable from {netns or 'the host'} as {address}")
    return cluster


def _ceph_down(state: LabState, record: LabCeph) -> None:
    """Take down the lab's own cluster; from one it was given, remove what the lab put
    there (see :func:`purge_rbd`), then detach the lab."""
    directory = Path(record.directory)
    if record.made:
        ceph.down(directory)
    elif (cluster := ceph.load(directory)) is not None:
        try:
            config = load_config(state.config)
        except NetbootError:  # never written or never valid: up put nothing in the pool
            config = None
        try:
            if config is not None:
                purge_rbd(config)
        finally:
            for netns in record.attached:
                ceph.detach(cluster, netns)


def purge_rbd(config: Config) -> None:
    """Remove from a cluster the lab was given what ``up`` made there, so the next lab
    on it starts clean: its clients' roots and the golden image; an image a user of
    the lab added is theirs to remove (``netboot image remove``). Run once tgtd,
    which holds the roots open, is stopped."""
    store = open_storage(config)
    with Inventory(config.storage.database) as inventory:
        roots = [Location.parse(c.lun_path) for c in inventory.clients() if c.lun_path]
    for location in roots:
        if location.store is Store.RBD:
            store.remove(location)
    for image in store.images():
        if image.name == IMAGE:
            store.drop_image(image)


def up(lab_dir: Path, clients: int, *, loader: str = "ipxe", lun_size: str = "1G",
       kernel_flavour: str = "cloud-amd64", unknown: str = "ignore", discovery_auth: bool = True,
       accel: Accel | None = None, cache_dir: Path | None = None,
       vlan: IPv4Interface = topology.BOOT_VLAN, storage: LabStorage = LabStorage.FILE,
       ceph_dir: Path | None = None, boot_method: str = "initramfs", ipv6: bool = False,
       arch: Arch = Arch.AMD64, say: Callable[[str], None] = print) -> LabState:
    """Bring a lab up and leave it running; on any failure or Ctrl-C nothing of it is left.

    Downloads (the kernel package) go to ``cache_dir``, by default the lab's cache/.
    ``vlan`` is the server's address and the boot VLAN's subnet (wider for many clients).
    ``storage`` ceph puts the image and roots on RBD: on the cluster up in ``ceph_dir``
    (left up afterwards), else on one the lab makes in its ceph/ (see :func:`plan_ceph`).
    ``boot_method`` is the clients' (``overlay``: the image shared read-only under each
    client's own upper layer). ``ipv6``: an IPv6-only VLAN (the bridge on
    topology.BOOT_VLAN6, no IPv4 there; DHCPv6 and RAs instead of DHCP). ``arch``: the
    clients' architecture (arm64: booted by ``boot(firmware=Firmware.AARCH64_UEFI)``),
    whose kernel, initramfs and built-in image the lab prepares.
    """
    if ceph_dir is not None and storage is not LabStorage.CEPH:
        raise LabError(f"a Ceph cluster ({ceph_dir}) is for a lab with storage ceph")
    lab_dir.mkdir(parents=True, exist_ok=True)
    # passable (not listable) by serve's network part, which runs as another user
    lab_dir.chmod(lab_dir.stat().st_mode | stat.S_IXOTH)
    if (lab_dir / STATE_FILE).exists() or topology.load(lab_dir) is not None:
        raise LabError(f"a lab is already up in {lab_dir}; "
                       f"'netboot lab down --dir {lab_dir}' removes it")
    given = _ceph_given(lab_dir, ceph_dir) if storage is LabStorage.CEPH else None
    logs = lab_dir / "logs"
    # No lab is up here, so what a previous one left (inventory, LUNs, logs) goes.
    for leftover in ("state", "logs", "vms", bmc.BMC_DIR):
        shutil.rmtree(lab_dir / leftover, ignore_errors=True)
    with topology.signals_interrupt():
        topo = topology.create(lab_dir, taps=clients, address=vlan,
                               ipv6=topology.BOOT_VLAN6 if ipv6 else None)
        try:
            say(f"boot VLAN: namespace {topo.netns}, bridge {topo.bridge} "
                f"{topo.ipv6 or topo.address}, "
                f"{clients} taps")
            chosen = accel or choose_accel(logs)
            say(f"VMs run under {chosen}")
            state = LabState(str(lab_dir / CONFIG_FILE), (), str(chosen), free_control_port(),
                             {}, plan_ceph(lab_dir / CEPH_DIR, given, topo.netns)
                             if storage is LabStorage.CEPH else None, arch.value)
            _save(lab_dir, state)  # from here on, each start is on record before the next
            rbd = None if state.ceph is None else rbd_config(_ceph_up(state.ceph, say))
            config_path = write_config(topo, state.tgt_control_port, loader, lun_size,
                                       kernel_flavour, cache_dir or lab_dir / "cache", unknown,
                                       discovery_auth, rbd)
            config = load_config(config_path)
            say(f"boot loaders from Debian's packages into {config.tftp_root_path}")
            populate(config.tftp_root_path, cache=config.storage.cache)
            for step in prepare_steps(arch):
                say(f"netboot {' '.join(step)}")
                _run(netboot_argv(config_path, *step), logs)
            serve = start_serve(topo, config_path, logs)
            state = replace(state, pids={"serve": serve.pid})
            _save(lab_dir, state)
            say(f"netboot serve running (pid {serve.pid}), tgtd on control port "
                f"{config.target.tgt_control_port}")
            password = bmc.new_password(lab_dir)
            for i in range(clients):
                client = LabClient(f"lab-{i + 1:02d}", lab_mac(i + 1))
                _run(netboot_argv(config_path, "client", "add", client.mac,
                                  "--hostname", client.name, "--image", IMAGE,
                                  "--boot-method", boot_method), logs)
                state = replace(state, clients=(*state.clients, client))
                _save(lab_dir, state)
                say(f"client {client.name} {client.mac} registered")
                state = _start_bmc(state, topo, client, i, password)
            say(f"each client's BMC answers IPMI inside the lab's namespace: "
                f"'ip netns exec {topo.netns} netboot --config {config_path} "
                f"client power MAC status'")
            return state
        except BaseException:
            with topology.signals_deferred():
                down(lab_dir)
            raise


def _start_bmc(state: LabState, topo: Topology, client: LabClient, index: int,
               password_file: Path) -> LabState:
    """Client ``index`` (from 0)'s simulated BMC: its files, its ipmi_sim (on record before
    the next step), and its record in the inventory with the real CLI (`client set --bmc`).
    Its chassis_control starts the VM as :func:`boot` does."""
    sim = bmc.plan(state.lab_dir, topo, client.name, index + 1)
    bmc.prepare(sim, VmSpec(client.name, client.mac, topo.taps[index], accel=Accel(state.accel)),
                password_file.read_text())
    process = bmc.start(topo, sim, state.lab_dir / "logs")
    state = replace(state, pids={**state.pids, f"bmc-{client.name}": process.pid})
    _save(state.lab_dir, state)
    record = sim.record("")
    run_cli(state, "client", "set", client.mac, "--bmc", record.url,
            "--bmc-password-file", str(password_file))
    return state


def stop_bmcs(state: LabState) -> None:
    """Stop the lab's ipmi_sims (so none starts a VM again), then the VMs they started."""
    topology.stop([pid for name, pid in state.pids.items() if name.startswith("bmc-")])
    topology.stop(bmc.vm_pids(state.lab_dir))


def _run(argv: list[str], logs: Path) -> None:
    """Run a CLI step on the host (downloads need its network; tgtd's socket is reachable anyway).

    Its output goes to the lab's commands.log, its error to the user.
    """
    logs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(argv, capture_output=True, text=True)
    with (logs / "commands.log").open("a") as log:
        log.write(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise LabError(f"'netboot {' '.join(argv[5:])}' failed: "
                       f"{(proc.stderr or proc.stdout).strip() or f'status {proc.returncode}'}")


def run_cli(state: LabState, *args: str) -> None:
    """`netboot ARGS` with the lab's config, e.g. ``run_cli(state, "client", "remove", mac)``."""
    _run(netboot_argv(Path(state.config), *args), state.lab_dir / "logs")


def stop_serve(state: LabState) -> None:
    """Stop the lab's `netboot serve` (tgtd and the VLAN stay), e.g. to let another server in."""
    if (pid := state.pids.get("serve")) is not None:
        _terminate(pid)


def restart_serve(state: LabState) -> LabState:
    """Stop the lab's `netboot serve` and start a new one (tgtd and clients stay)."""
    topo = topology.load(state.lab_dir)
    if topo is None:
        raise LabError(f"no boot VLAN in {state.lab_dir}")
    stop_serve(state)
    serve = start_serve(topo, Path(state.config), state.lab_dir / "logs")
    state = replace(state, pids={**state.pids, "serve": serve.pid})
    _save(state.lab_dir, state)
    return state


def down(lab_dir: Path) -> bool:
    """Stop and remove the lab in ``lab_dir``; False if there was nothing to remove."""
    path = lab_dir / STATE_FILE
    if path.exists():
        try:
            state = load_state(lab_dir)
        except LabError:
            state = None
        try:
            if state is not None:
                stop_bmcs(state)
                stop_serve(state)
                stop_tgtd(state.tgt_control_port)  # serve leaves it running, by design
                if state.ceph is not None:  # after tgtd, which has its LUNs open there
                    _ceph_down(state, state.ceph)
            path.unlink(missing_ok=True)  # kept if the cluster's part failed: down again
        finally:  # the VLAN goes whatever went wrong with the cluster
            topology.down(lab_dir)
        return True
    return topology.down(lab_dir) is not None


def _terminate(pid: int, grace: float = procs.STOP_GRACE) -> None:
    """SIGTERM a process we no longer hold a handle on; wait for it to go."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it now (serve's network part, its TFTP workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(FileNotFoundError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with suppress(FileNotFoundError):
                    todo += map(int, (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` and the processes below it have used (None if it
    is gone)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            if member == pid:
                return None
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def inventory_poll(inventory: Inventory,
                   macs: Sequence[str]) -> Callable[[], list[tuple[str, str, float]]]:
    """Stages the server recorded for ``macs`` (last stage per client, as the inventory keeps)."""

    def poll() -> list[tuple[str, str, float]]:
        found = []
        for mac in macs:
            client = inventory.find(mac)
            if client is not None and client.last_stage and client.last_stage_at:
                found.append((mac, client.last_stage, client.last_stage_at))
        return found

    return poll


def firmware_for(arch: Arch, firmware: Firmware | None) -> Firmware:
    """The firmware a lab of ``arch`` clients boots them with: ``firmware`` if it suits
    that architecture (None: BIOS for amd64, AAVMF for arm64), else a LabError."""
    arm = arch is Arch.ARM64
    if firmware is None:
        return Firmware.AARCH64_UEFI if arm else Firmware.BIOS
    if (firmware is Firmware.AARCH64_UEFI) != arm:
        fits = "aarch64-uefi" if arm else "an x86 one (bios, uefi, ...)"
        raise LabError(f"the lab's clients are {arch}: firmware {firmware} does not boot them; "
                       f"use {fits}")
    return firmware


def boot(lab_dir: Path, count: int | None = None, firmware: Firmware | None = None,
         timeout: float = BOOT_TIMEOUT, stream: TextIO = sys.stdout) -> tuple[
             list[ClientProgress], float | None]:
    """Boot the lab's clients at once; their progress and the server's CPU seconds used.
    ``firmware``: by default the one of the lab's architecture (:func:`firmware_for`)."""
    state = load_state(lab_dir)
    firmware = firmware_for(Arch(state.arch), firmware)
    topo = topology.load(lab_dir)
    if topo is None:
        raise LabError(f"{lab_dir} has lab state but no boot VLAN: run 'netboot lab down' "
                       "and 'netboot lab up' again")
    serve_pid = state.pids.get("serve")
    if serve_pid is None or (cpu_before := cpu_seconds(serve_pid)) is None:
        raise LabError("netboot serve is not running in the lab: see "
                       f"{lab_dir / 'logs' / 'netboot-serve.log'}, then 'netboot lab down' and "
                       "'netboot lab up'")
    clients = state.clients[:count] if count is not None else state.clients
    if count is not None and count > len(state.clients):
        raise LabError(f"the lab has {len(state.clients)} clients, not {count}: "
                       f"'netboot lab up --clients {count}'")
    config = load_config(state.config)
    progress = [ClientProgress(c.name, c.mac) for c in clients]
    factory = VmFactory(lab_dir / "vms")
    with topology.signals_interrupt():
        try:
            for client, tap in zip(clients, topo.taps, strict=False):
                factory.start(VmSpec(client.name, client.mac, tap, firmware=firmware,
                                     accel=Accel(state.accel)), topo.netns)
            with open_inventory(config) as inventory:
                watch(factory.vms, Board(progress, stream), timeout,
                      inventory_poll(inventory, [c.mac for c in clients]))
            for vm, client in zip(factory.vms, progress, strict=True):
                if client.result == "ok":  # let its root's init run (the built-in one powers off)
                    with suppress(VmTimeout):
                        vm.wait_exit(ROOT_GRACE)
        finally:
            with topology.signals_deferred():
                factory.stop_all()
    cpu_after = cpu_seconds(serve_pid)
    return progress, (None if cpu_after is None else cpu_after - cpu_before)

