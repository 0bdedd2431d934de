"""Debian 12 clients boot through the real `netboot serve`, tgtd and CLI, by both methods.

One lab (module-scoped) with three clients: lab-01 and lab-02 cloned from
one image built by `netboot image build deb12 --debootstrap bookworm` (method
initramfs: the lab's kernel and netboot's /init), lab-03 from
`--debootstrap bookworm --sanboot` (method sanboot: iPXE logs in, GRUB and the
image's own kernel boot). mmdebstrap's tarballs are cached in the lab cache,
so only the first run on a machine downloads packages.

Boots are kept few (60-150 s each under TCG): lab-02 and lab-03 boot once,
lab-03 with a check script written into its disk beforehand that reports who
may read the iBFT's CHAP secret; lab-01 boots twice, with a check script
written into its LUN beforehand that writes 64 MiB, waits for the host to
stop tgtd for 5 s, writes again after the session came back and reboots; its
second boot reads the data back.

Overlay: lab-04 is an overlay client of deb12@1 with its BMC (method overlay: the image
read-only under its own upper layer), a check script written into its upper layer
beforehand. Powered on through its BMC it writes /home/u/mine; `netboot rollout deb12@2`
(the same build plus /etc/netboot-release, by `image build --files`) shuts it down softly
through its BMC (ACPI) and boots it on v2; `rollout --undo` brings v1 back the same way;
`client power off` shuts it down softly at the end. Three Debian boots in all.

Failover: two servers in two namespaces on one bridge share a PostgreSQL
inventory and the floating portal, with the deb12 image imported into the
session's Ceph cluster. A client boots from its RBD clone (method initramfs)
and writes a checksummed stream of fsynced files; the server holding the
portal is power-cut (link, serve, keepalived and tgtd at once); the client's
writes go on through the other server, and its reboot, through that server
alone, reads every file back.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.configfile import load_config
from netboot.host import iproute
from netboot.inventory.store import Inventory
from netboot.lab import bmc, bmc_control, ceph, lab
from netboot.lab.bmc_control import CONSOLE
from netboot.lab.rootfs import read_file
from netboot.lab.topology import LabError
from netboot.lab.vm import Accel, Vm, VmFactory, VmSpec, clean_line, spec_json
from netboot.storage.backend import open_storage
from netboot.storage.bootdisk import PARTITION_START, SECTOR
from netboot.storage.model import ImageRef
from netboot.target.failover.portal import holding
from netboot.target.tgtd import stop_tgtd, tgtd_pid
from tests.support.ceph import image_name
from tests.support.failover import clean_up, server_config, server_states, status
from tests.support.netlab import Lab
from tests.support.paths import make_reachable
from tests.support.waiting import eventually

# The first test also builds both images (a cold sanboot image takes ~6 min on a fresh
# machine, whose lab cache is empty): a limit for that, not a speed check.
pytestmark = pytest.mark.timeout(1800)

OS_TIMEOUT = 600.0  # seconds from power-on to the end of a Debian boot under TCG, at most
MEMORY_MB = 768
OUTAGE = 5.0  # seconds tgtd is away
BLOB = 64 << 20
SANBOOT_LUN = "3G"  # lab-03's root: larger than the 2G image, so `client add` grows the disk
PATTERN = b"netboot-test-data\n"  # what `yes netboot-test-data` writes
UNREACHABLE_OR_NET = re.compile(r"iscsi|network|ifup|dhc|ssh", re.IGNORECASE)

# How each check script starts: once the system is up and has said so on the console,
# its own lines go there too, one per result.
RUNNING = """#!/bin/sh
# Written into a client's root by qemu-tests/test_os_boot.py.
systemctl is-system-running --wait >/dev/null 2>&1
while systemctl is-active -q netboot-os-up.service; do sleep 1; done
exec >/dev/ttyS0 2>&1  # afresh: a getty starting meanwhile hangs the first one up
"""
CHECK_SCRIPT = RUNNING + """D=/var/lib/netboot-test
if [ -e "$D/blob" ]; then
	echo "TEST-SUM-AGAIN $(sha256sum "$D/blob" | cut -d' ' -f1)"
	systemctl poweroff
	exit 0
fi
mkdir -p "$D"
yes netboot-test-data | head -c BLOB_BYTES | dd of="$D/blob" bs=1M iflag=fullblock conv=fsync \\
	status=none
echo "TEST-SUM $(sha256sum "$D/blob" | cut -d' ' -f1)"
state() { cat /sys/class/iscsi_session/session*/state 2>/dev/null | head -n 1; }
echo "TEST-READY-FOR-OUTAGE $(state)"
i=0
while [ "$(state)" = LOGGED_IN ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
echo "TEST-SESSION-LOST $(state)"
i=0
while [ "$(state)" != LOGGED_IN ] && [ $i -lt 1200 ]; do sleep 0.5; i=$((i + 1)); done
echo "TEST-SESSION-BACK $(state)"
if dd if=/dev/urandom of="$D/after" bs=1M count=16 conv=fsync status=none; then
	echo "TEST-WRITE-AFTER-OUTAGE ok"
else
	echo "TEST-WRITE-AFTER-OUTAGE failed"
fi
echo "TEST-REBOOT"
systemctl reboot
""".replace("BLOB_BYTES", str(BLOB))

FAILOVER_MAC = "52:54:00:40:00:01"
# power cuts, one of each server in turn (the README's figure is the median of 5 from a run
# with 5)
FAILOVER_CUTS = 2
FAILOVER_FIRST = 5  # files the failover client writes before the first cut
FAILOVER_AFTER = 10  # files it writes after its session broke the last time, then reboots
# A checksummed stream of fsynced files, one console line each, on through the cuts.
FAILOVER_SCRIPT = RUNNING + """D=/var/lib/netboot-failover
if [ -d "$D" ]; then
	for f in "$D"/*; do echo "TEST-AGAIN ${f##*/} $(sha256sum <"$f" | cut -d' ' -f1)"; done
	echo "TEST-AGAIN-END"
	systemctl poweroff
	exit 0
fi
mkdir -p "$D"
C=/sys/class/iscsi_connection
every=$(cat $C/connection*/recv_tmo | head -n 1)
echo "TEST-PINGS $every $(cat $C/connection*/ping_tmo | head -n 1)"
i=0
base=$(dmesg | grep -c "detected conn error")  # any before the writes (a re-login at boot)
lost=0
left=AFTER
while [ $i -lt 5000 ] && [ $left -gt 0 ]; do
	i=$((i + 1))
	n=$(printf %05d $i)
	echo "TEST-START $n"
	head -c 65536 /dev/urandom >"$D/$n" && sync "$D/$n" "$D" &&
		echo "TEST-FILE $n $(sha256sum <"$D/$n" | cut -d' ' -f1)"
	seen=$(($(dmesg | grep -c "detected conn error") - base))
	if [ "$seen" -gt $lost ]; then
		lost=$seen
		echo "TEST-SESSION-LOST $n $lost"
	fi
	if [ $lost -ge CUTS ]; then
		left=$((left - 1))
	fi
	sleep 0.2
done
echo "TEST-REBOOT"
systemctl reboot
""".replace("AFTER", str(FAILOVER_AFTER)).replace("CUTS", str(FAILOVER_CUTS))

OVERLAY = "lab-04"  # the overlay client, powered through its BMC
# Written into lab-04's upper layer: each boot says which release it runs, what /home/u/mine
# holds (written by the first boot) and who the machine is, then waits for a power-off.
OVERLAY_SCRIPT = RUNNING + """
echo "TEST-RELEASE $(cat /etc/netboot-release 2>/dev/null || echo none)"
echo "TEST-MINE $(cat /home/u/mine 2>/dev/null || echo none)"
if [ ! -e /home/u/mine ]; then
	mkdir -p /home/u
	echo mine >/home/u/mine
	sync /home/u/mine
fi
key=$(ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null | cut -d' ' -f2)
initiator=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
echo "TEST-IDENTITY $(hostname) $(cat /etc/machine-id) ${key:-none} ${initiator:-none}"
echo "TEST-WAITING"
"""
POWER_DOWN = "reboot: Power down"  # the kernel's last line of a clean poweroff
# What the first boot leaves in the upper layer (relative to its root): the identity.
IDENTITY_FILES = ("/etc/machine-id", "/etc/hostname", "/etc/iscsi/initiatorname.iscsi",
                  "/etc/ssh/ssh_host_ed25519_key.pub", "/home/u/mine")

IBFT_SECRET = "/sys/firmware/ibft/target0/chap-secret"
IBFT_CHECK_SCRIPT = """#!/bin/sh
# Written into lab-03's root by qemu-tests/test_os_boot.py: who may read the iBFT's secret.
S=IBFT_SECRET
while systemctl is-active -q netboot-os-up.service; do sleep 1; done
exec >/dev/ttyS0 2>&1  # afresh: a getty starting meanwhile hangs the first one up
if err=$(su nobody -s /bin/sh -c "cat $S" 2>&1 >/dev/null); then
	echo "TEST-IBFT-NOBODY read"
else
	echo "TEST-IBFT-NOBODY $err"
fi
echo "TEST-IBFT-ROOT $(sha256sum <"$S" | cut -d' ' -f1)"
""".replace("IBFT_SECRET", IBFT_SECRET)

CHECK_UNIT = """[Unit]
Description=qemu-test checks on the running system
After=multi-user.target getty.target netboot-os-up.service

[Service]
Type=exec
ExecStart=/usr/local/sbin/netboot-test
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
"""


@dataclass
class OsLab:
    state: lab.LabState
    build_seconds: dict[str, float]
    luns: dict[str, Path]
    factory: VmFactory

    def chap_secret(self, name: str) -> str:
        """The client's CHAP secret now: the one its latest boot window gave it."""
        with Inventory(load_config(self.state.config).storage.database) as inventory:
            return next(c.chap_secret for c in inventory.clients() if c.hostname == name)

    def boot(self, name: str, run: str) -> Vm:
        client = next(c for c in self.state.clients if c.name == name)
        index = self.state.clients.index(client)
        topo = lab.topology.load(self.state.lab_dir)
        assert topo is not None
        spec = VmSpec(f"{name}-{run}", client.mac, topo.taps[index], accel=Accel(self.state.accel),
                      memory_mb=MEMORY_MB)
        return self.factory.start(spec, topo.netns)


@dataclass(frozen=True)
class Boot:
    console: str
    up_at: float  # seconds from QEMU's start to NETBOOT-OS-UP


def expected_sum() -> str:
    data = (PATTERN * (BLOB // len(PATTERN) + 1))[:BLOB]
    return hashlib.sha256(data).hexdigest()


def install_check_script(filesystem: str, work: Path, text: str, under: str = "") -> None:
    """Put a check script and its unit (enabled) into an ext4 filesystem with debugfs -w;
    ``filesystem`` is a LUN, or ``LUN?offset=BYTES`` for the partition of a sanboot disk;
    ``under``: the directory that is the root (``/upper`` of an overlay client's upper
    layer), its directories made as needed (debugfs says so and goes on where they exist)."""
    script, unit = work / "netboot-test", work / "netboot-test.service"
    script.write_text(text)
    script.chmod(0o755)
    unit.write_text(CHECK_UNIT)
    unit.chmod(0o644)
    directories = ("/usr", "/usr/local", "/usr/local/sbin", "/etc", "/etc/systemd",
                   "/etc/systemd/system", "/etc/systemd/system/multi-user.target.wants")
    commands = ("".join(f"mkdir {under}{d}\n" for d in directories)
                + f"cd {under}/usr/local/sbin\nwrite {script} netboot-test\n"
                f"cd {under}/etc/systemd/system\nwrite {unit} netboot-test.service\n"
                "cd multi-user.target.wants\n"
                "symlink netboot-test.service /etc/systemd/system/netboot-test.service\n")
    subprocess.run(["debugfs", "-w", "-f", "-", filesystem], input=commands, text=True,
                   check=True, capture_output=True)


def wait_up(vm: Vm) -> Boot:
    """Follow ``vm`` to NETBOOT-OS-END; the console so far and when the system was up."""
    up = vm.wait_for(r"NETBOOT-OS-UP ", OS_TIMEOUT)
    vm.wait_for(r"NETBOOT-OS-END", 120)
    return Boot(vm.serial_log.read_text(errors="replace"), up.at)


def reports(console: str, marker: str) -> list[list[str]]:
    return [line.split(marker, 1)[1].split() for line in console.splitlines() if marker in line]


def session_lines(console: str) -> list[str]:
    return re.findall(r"tcp: \[\d+\] [\d.]+:\d+,1 (\S+)", console)


@pytest.fixture(scope="module")
def oslab(tmp_path_factory: pytest.TempPathFactory, accel: Accel,
          lab_cache: Path) -> Iterator[OsLab]:
    lab_dir = tmp_path_factory.mktemp("os-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    try:
        state = lab.up(lab_dir, 4, accel=accel, cache_dir=lab_cache, say=lambda _: None)
        seconds = {}
        for name, extra in (("deb12", ()), ("deb12san", ("--sanboot",))):
            started = time.monotonic()
            lab.run_cli(state, "image", "build", name, "--debootstrap", "bookworm", *extra)
            seconds[name] = time.monotonic() - started
        for client, (image, method, size) in zip(state.clients, (
                ("deb12", "initramfs", ()), ("deb12", "initramfs", ()),
                ("deb12san", "sanboot", ("--size", SANBOOT_LUN)),
                ("deb12@1", "overlay", ())), strict=True):
            lab.run_cli(state, "client", "remove", "--purge", client.mac)
            lab.run_cli(state, "client", "add", client.mac, "--hostname", client.name,
                        "--image", image, "--boot-method", method, *size)
        give_bmc_back(state, OVERLAY)  # its record went with the client
        with Inventory(load_config(state.config).storage.database) as inventory:
            clients = list(inventory.clients())
        luns = {c.hostname: Path(str(c.lun_path)) for c in clients}
        factory = VmFactory(lab_dir / "vms")
        made = OsLab(state, seconds, luns, factory)
        yield made
        factory.stop_all()
    finally:
        lab.down(lab_dir)


def boot_once(oslab: OsLab, name: str) -> Boot:
    """One boot of client ``name`` until the OS is up, then power off."""
    vm = oslab.boot(name, "boot1")
    try:
        return wait_up(vm)
    finally:
        vm.stop()


def give_bmc_back(state: lab.LabState, name: str) -> None:
    """Register client ``name``'s lab BMC again, as `lab up` did (`client remove` forgot it)."""
    index = next(i for i, c in enumerate(state.clients) if c.name == name)
    topo = lab.topology.load(state.lab_dir)
    assert topo is not None
    sim = bmc.plan(state.lab_dir, topo, name, index + 1)
    lab.run_cli(state, "client", "set", state.clients[index].mac, "--bmc", sim.record("").url,
                "--bmc-password-file", str(state.lab_dir / bmc.BMC_DIR / bmc.PASSWORD_FILE))
    # a Debian system needs more memory than the built-in image the BMC was set up for
    spec = bmc_control.load_spec(sim.directory)
    (sim.directory / bmc_control.SPEC).write_text(
        json.dumps(spec_json(replace(spec, memory_mb=MEMORY_MB))))


@dataclass(frozen=True)
class Failover:
    """What the failover client's two boots showed; times in seconds since its first
    QEMU started."""

    first: Boot  # until the reboot its script asked for
    resumed: tuple[float, ...]  # per cut: seconds to its first completed write after it
    again: str  # the second boot's console, through the surviving server alone
    states: dict[str, tuple[str, str]]  # each server's (state, portal role) after cut 1
    holder: str  # the portal's holder after cut 1, as `status` says


def serial_lines(console: str, marker: str) -> list[tuple[float, list[str]]]:
    """(when, words after ``marker``) of each console line holding it."""
    return [(float(line[1:line.index("]")]), line.split(marker, 1)[1].split())
            for line in console.splitlines() if marker in line]


def first_write_after(vm: Vm, cut_at: float) -> float:
    """When the first file whose write began after ``cut_at`` was fsynced (console time)."""
    began: set[str] = set()
    for line in vm.lines(60, "a completed write after the cut"):
        words = line.text.split()
        if "TEST-START" in words and line.at > cut_at:
            began.add(words[-1])
        elif "TEST-FILE" in words and words[words.index("TEST-FILE") + 1] in began:
            return line.at
    raise AssertionError(f"{vm.spec.name} exited before writing after the cut")


@dataclass
class FailoverServer:
    """One of the two servers: where it runs and how to cut and restart it."""

    name: str
    netns: str
    address: str
    interface: str
    config: Config
    serve: subprocess.Popen | None = None
    plugged: bool = True  # its link is on the switch

    def cut(self) -> None:
        """A power cut: its boot link, serve, keepalived and tgtd gone at once."""
        iproute.ip("link", "delete", self.interface, netns=self.netns)
        self.plugged = False
        tgtd = tgtd_pid(self.config.target.tgt_control_port)
        assert self.serve is not None
        os.killpg(self.serve.pid, signal.SIGKILL)  # serve and its keepalived
        if tgtd is not None:
            os.kill(tgtd, signal.SIGKILL)

    def start(self, netlab: Lab, hub: str, log: Path) -> None:
        """Power on: its link back on the switch, then its serve (which rejoins)."""
        if not self.plugged:
            netlab.plug(hub, self.netns, f"{self.address}/24", name=self.interface)
            self.plugged = True
        self.serve = netlab.serve(self.netns, self.config.source, log)


def cli(config: Config, *args: str) -> None:
    """The real CLI with one failover server's config; its output in the error if it fails."""
    done = subprocess.run(lab.netboot_argv(config.source, *args), capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"netboot {' '.join(args)}: {done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def failover(oslab: OsLab, tmp_path_factory: pytest.TempPathFactory, accel: Accel,
             ceph_cluster: ceph.Cluster, postgres_server) -> Iterator[Failover]:
    """Two servers and one client on RBD through FAILOVER_CUTS power cuts, each of the
    portal's holder, which then powers on again and rejoins as standby; see the module's
    docstring. Everything is removed after, the fences lifted."""
    built = open_storage(load_config(oslab.state.config)).find_image(ImageRef("deb12", 1))
    assert built is not None
    work = tmp_path_factory.mktemp("failover")
    image = work / "deb12.img"  # the check script goes into a copy: oslab's image stays
    subprocess.run(["cp", "--sparse=always", built.location.name, str(image)], check=True)
    install_check_script(str(image), work, FAILOVER_SCRIPT)
    database = postgres_server.new_database()
    netlab = Lab(work)
    configs: list[Config] = []
    storage: dict[str, IPv4Address] = {}
    factory = VmFactory(work / "vms")
    try:
        a, b = netlab.netns("a"), netlab.netns("b")
        links = netlab.switch((a, "198.18.40.2/24", None), (b, "198.18.40.3/24", None),
                              taps=1)
        hub, tap = netlab.taps[0]
        storage.update({ns: ceph.attach(ceph_cluster, ns).ip for ns in (a, b)})
        router_id = random.randint(1, 255)
        served = oslab.state.lab_dir / "state"  # oslab's kernel, initramfs and loaders
        extra = (f"boot:\n  kernel: {served / 'kernel' / 'vmlinuz'}\n"
                 f"  initramfs: {served / 'initramfs' / 'base.img'}\n  onfail: halt\n"
                 f'inventory:\n  url: "{postgres_server.url(database)}"\n'
                 f"  password_file: {postgres_server.password_file}\n")
        servers = []
        for ns, name, address, priority, peer, pool in (
                (a, "boot-a", "198.18.40.2", 150, b, ("198.18.40.192", "198.18.40.223")),
                (b, "boot-b", "198.18.40.3", 100, a, ("198.18.40.224", "198.18.40.254"))):
            configs.append(server_config(
                work / f"{name}.yaml", links[ns], address, ceph_cluster, priority=priority,
                router_id=router_id, peer=storage[peer], extra=extra,
                server=f"  name: {name}\n  user: root\n  tftp_root: {served / 'tftproot'}\n",
                dhcp=f"  range_start: {pool[0]}\n  range_end: {pool[1]}\n"))
            servers.append(FailoverServer(name, ns, address, links[ns], configs[-1]))
        golden = image_name("deb12fo")
        cli(configs[0], "image", "import", golden, str(image))
        cli(configs[0], "client", "add", FAILOVER_MAC, "--hostname", "fo-01", "--image",
            golden, "--boot-method", "initramfs")
        holder, standby = servers
        holder.start(netlab, hub, work / "boot-a-serve.log")
        assert eventually(lambda: holding(holder.config), 30)  # nopreempt keeps it there
        standby.start(netlab, hub, work / "boot-b-serve.log")
        vm = factory.start(VmSpec("fo-01-boot1", FAILOVER_MAC, tap, accel=accel,
                                  memory_mb=MEMORY_MB), hub)
        up = wait_up(vm)
        vm.wait_for(rf"TEST-FILE {FAILOVER_FIRST:05d} ", OS_TIMEOUT)
        resumed = []
        for cut in range(FAILOVER_CUTS):
            cut_at = time.monotonic() - vm.started
            holder.cut()
            resumed.append(first_write_after(vm, cut_at) - cut_at)
            assert holding(standby.config)
            if cut == 0:
                eventually(lambda h=holder, s=standby:
                           server_states(s.config)[h.name][0] == "lost", 30)
                states = server_states(standby.config)
                moved_to = status(standby.config)["portal_holder"]
            if cut < FAILOVER_CUTS - 1:  # the cut one powers on again and rejoins
                holder.start(netlab, hub, work / f"{holder.name}-serve.log")
                assert eventually(lambda h=holder, s=standby: server_states(s.config)[h.name]
                                  == ("running", "standby"), 30)
            holder, standby = standby, holder
        vm.wait_exit(OS_TIMEOUT)  # its script reboots it
        first = Boot(vm.serial_log.read_text(errors="replace"), up.up_at)
        again = factory.start(VmSpec("fo-01-boot2", FAILOVER_MAC, tap, accel=accel,
                                     memory_mb=MEMORY_MB), hub)
        again.wait_for(r"TEST-AGAIN-END", OS_TIMEOUT)
        again.wait_exit(120)
        yield Failover(first, tuple(resumed), again.serial_log.read_text(errors="replace"),
                       states, moved_to)
        factory.stop_all()
        cli(holder.config, "client", "remove", "--purge", FAILOVER_MAC)
        cli(holder.config, "image", "remove", golden)
    finally:
        factory.stop_all()
        clean_up(netlab, configs, storage)
        for ns in storage:
            ceph.detach(ceph_cluster, ns)
        postgres_server.drop_database(database)


@pytest.fixture(scope="module")
def second_clone(oslab: OsLab) -> Boot:
    return boot_once(oslab, "lab-02")


@pytest.fixture(scope="module")
def sanboot_clone(oslab: OsLab, tmp_path_factory: pytest.TempPathFactory) -> Boot:
    """lab-03's boot until its iBFT check has reported, then power off."""
    partition = f"{oslab.luns['lab-03']}?offset={PARTITION_START * SECTOR}"
    install_check_script(partition, tmp_path_factory.mktemp("ibft"), IBFT_CHECK_SCRIPT)
    vm = oslab.boot("lab-03", "boot1")
    try:
        up = wait_up(vm)
        vm.wait_for(r"TEST-IBFT-ROOT ", 120)
        return Boot(vm.serial_log.read_text(errors="replace"), up.up_at)
    finally:
        vm.stop()


@pytest.fixture(scope="module")
def first_clone(oslab: OsLab, tmp_path_factory: pytest.TempPathFactory) -> tuple[Boot, str]:
    """lab-01's first boot, through the outage to its reboot, and its second boot's console."""
    install_check_script(str(oslab.luns["lab-01"]), tmp_path_factory.mktemp("check"),
                         CHECK_SCRIPT)
    vm = oslab.boot("lab-01", "boot1")
    try:
        up = wait_up(vm)
        vm.wait_for(r"TEST-READY-FOR-OUTAGE", OS_TIMEOUT)
        lab.stop_serve(oslab.state)  # else serve starts tgtd again within a second
        stop_tgtd(oslab.state.tgt_control_port)
        time.sleep(OUTAGE)
        oslab.state = lab.restart_serve(oslab.state)  # starts tgtd; reconcile restores targets
        vm.wait_exit(OS_TIMEOUT)
        first = Boot(vm.serial_log.read_text(errors="replace"), up.up_at)
    finally:
        vm.stop()
    again = oslab.boot("lab-01", "boot2")
    try:
        again.wait_for(r"TEST-SUM-AGAIN ", OS_TIMEOUT)
        again.wait_exit(120)
        return first, again.serial_log.read_text(errors="replace")
    finally:
        again.stop()


def test_initramfs_clone_boots_to_a_running_system(second_clone, record_boot, oslab):
    assert reports(second_clone.console, "NETBOOT-OS-UP ")[0] == ["lab-02", "running"]
    record_boot("Debian 12, method initramfs: power-on to NETBOOT-OS-UP", second_clone.up_at)
    for name, seconds in oslab.build_seconds.items():
        record_boot(f"image build {name} (mmdebstrap tarball cached)", seconds)


def test_client_on_rbd_boots_through_two_servers_to_a_running_system(failover, record_boot):
    assert reports(failover.first.console, "NETBOOT-OS-UP ")[0] == ["fo-01", "running"]
    record_boot("Debian 12 on an RBD clone, two servers: power-on to NETBOOT-OS-UP",
                failover.first.up_at)


def test_client_writes_resume_through_the_other_server_within_30_s_of_each_power_cut(
        failover, record_boot):
    for cut, seconds in enumerate(failover.resumed, 1):
        record_boot(f"failover: power cut {cut} to the client's first completed write after it",
                    seconds)
    record_boot(f"failover: the median of {len(failover.resumed)} cuts",
                statistics.median(failover.resumed))
    assert len(failover.resumed) == FAILOVER_CUTS
    assert max(failover.resumed) < 30


def test_the_clients_iscsid_pings_its_target_after_adopting_the_root_session(failover):
    """recv_tmo is noop_out_interval, ping_tmo noop_out_timeout (the kernel's names)."""
    assert reports(failover.first.console, "TEST-PINGS ")[0] == ["5", "5"]


def test_client_saw_its_session_break_at_each_cut(failover):
    lost = reports(failover.first.console, "TEST-SESSION-LOST ")
    assert int(lost[-1][1]) >= FAILOVER_CUTS


def test_every_file_the_client_fsynced_is_intact_after_a_reboot_through_the_other_server(
        failover):
    written = {words[0]: words[1] for _, words in
               serial_lines(failover.first.console, "TEST-FILE ")}
    assert len(written) > FAILOVER_FIRST
    again = {words[0]: words[1] for _, words in serial_lines(failover.again, "TEST-AGAIN ")}
    assert {name: again.get(name) for name in written} == written


def test_status_shows_the_portal_moved_and_the_cut_server_lost(failover):
    assert failover.holder == "boot-b"
    assert failover.states == {"boot-a": ("lost", "holder"), "boot-b": ("running", "holder")}


def test_initramfs_clone_reports_os_up_to_the_server(second_clone, oslab: OsLab):
    def last_stage() -> str | None:
        with Inventory(load_config(oslab.state.config).storage.database) as inventory:
            client, = [c for c in inventory.clients() if c.hostname == "lab-02"]
        return client.last_stage

    assert eventually(lambda: last_stage() == "os-up"), last_stage()


def test_initramfs_clone_lists_its_root_session(second_clone):
    (target,) = session_lines(second_clone.console)
    assert target.endswith(":lab-02")


def test_initramfs_clone_has_no_failed_iscsi_or_network_unit(second_clone):
    failed = [u[0] for u in reports(second_clone.console, "NETBOOT-OS-FAILED ")]
    assert [u for u in failed if UNREACHABLE_OR_NET.search(u)] == []


def test_sanboot_clone_boots_to_a_running_system(sanboot_clone, record_boot):
    assert reports(sanboot_clone.console, "NETBOOT-OS-UP ")[0] == ["lab-03", "running"]
    record_boot("Debian 12, method sanboot: power-on to NETBOOT-OS-UP", sanboot_clone.up_at)


def test_sanboot_clone_grown_at_add_fills_its_lun_and_boots(oslab: OsLab, sanboot_clone):
    assert reports(sanboot_clone.console, "NETBOOT-OS-UP ")[0][0] == "lab-03"
    lun = oslab.luns["lab-03"]
    offset = PARTITION_START * SECTOR
    assert lun.stat().st_size == 3 << 30
    table = subprocess.run(["sfdisk", "--dump", str(lun)], capture_output=True, text=True,
                           check=True).stdout
    assert f"size={((3 << 30) - offset) // SECTOR}," in table.replace(" ", "")
    header = subprocess.run(["dumpe2fs", "-h", f"{lun}?offset={offset}"], capture_output=True,
                            text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    assert int(fields["Block count"]) * int(fields["Block size"]) == (3 << 30) - offset


def test_sanboot_clone_lists_its_root_session_and_no_failed_iscsi_or_network_unit(
        sanboot_clone):
    (target,) = session_lines(sanboot_clone.console)
    assert target.endswith(":lab-03")
    failed = [u[0] for u in reports(sanboot_clone.console, "NETBOOT-OS-FAILED ")]
    assert [u for u in failed if UNREACHABLE_OR_NET.search(u)] == []


def test_sanboot_clone_hides_the_ibft_chap_secret_from_other_users(sanboot_clone):
    line = next(line for line in sanboot_clone.console.splitlines() if "TEST-IBFT-NOBODY " in line)
    assert "Permission denied" in line


def test_sanboot_clone_root_reads_its_chap_secret_from_the_ibft(oslab: OsLab, sanboot_clone):
    # The kernel shows each iBFT string with a newline after it.
    secret = oslab.chap_secret("lab-03") + "\n"  # renewed by its boot window
    assert reports(sanboot_clone.console, "TEST-IBFT-ROOT ")[0] == [
        hashlib.sha256(secret.encode()).hexdigest()]


def test_two_clones_have_their_own_hostname_machine_id_and_ssh_host_key(first_clone,
                                                                        second_clone):
    one, two = first_clone[0].console, second_clone.console
    assert reports(one, "NETBOOT-OS-UP ")[0][0] != reports(two, "NETBOOT-OS-UP ")[0][0]
    id_one, id_two = reports(one, "NETBOOT-OS-ID ")[0], reports(two, "NETBOOT-OS-ID ")[0]
    assert "no-ssh-host-key" not in id_one + id_two
    assert id_one[0] != id_two[0] and id_one[1] != id_two[1]


def test_written_data_has_the_known_checksum(first_clone):
    assert reports(first_clone[0].console, "TEST-SUM ")[0] == [expected_sum()]


def test_session_recovers_after_tgtd_was_away_and_a_write_then_succeeds(first_clone):
    console = first_clone[0].console
    assert reports(console, "TEST-SESSION-LOST ")[0] != ["LOGGED_IN"]
    assert reports(console, "TEST-SESSION-BACK ")[0] == ["LOGGED_IN"]
    assert reports(console, "TEST-WRITE-AFTER-OUTAGE ")[0] == ["ok"]


def test_the_session_that_recovered_uses_the_secret_its_boot_window_renewed(oslab: OsLab,
                                                                           first_clone):
    """Per-boot CHAP: the target restart above came after a rotation, and the OS logged in
    again with the secret it was booted with, the renewed one."""
    mac = next(c.mac for c in oslab.state.clients if c.name == "lab-01")
    log = (oslab.state.lab_dir / "logs" / "netboot-serve.log").read_text().splitlines()
    assert any(f"[{mac}]" in line and "CHAP secrets renewed" in line for line in log)
    assert reports(first_clone[0].console, "TEST-SESSION-BACK ")[0] == ["LOGGED_IN"]


def test_reboot_is_clean(first_clone):
    console = first_clone[0].console
    shutdown = console.split("TEST-REBOOT", 1)[1]
    assert "I/O error" not in shutdown
    assert "reboot: Restarting system" in shutdown


def test_data_reads_back_the_same_after_the_reboot(first_clone):
    assert reports(first_clone[1], "TEST-SUM-AGAIN ")[0] == [expected_sum()]


@dataclass(frozen=True)
class OverlayRun:
    """lab-04's three boots through its BMC (v1, v2 by the roll-out, v1 by its undo) and the
    soft power-off after them; what it left in its upper layer and what the images hold."""

    boots: tuple[dict[str, list[str]], ...]  # per boot: marker -> its words
    console: str
    rollout: dict
    undo: dict
    off: dict
    seconds: dict[str, float]  # each step's, for the run's figures
    upper: dict[str, str]  # IDENTITY_FILES as the upper layer holds them afterwards
    images: dict[str, dict[str, str]]  # image version -> /etc files of it


def console_text(path: Path) -> str:
    """A BMC-started VM's raw console as clean lines."""
    raw = path.read_bytes() if path.exists() else b""
    return "\n".join(clean_line(line.replace(b"\r", b"")) for line in raw.split(b"\n"))


def read_or_none(image: Path, path: str) -> str:
    try:
        return read_file(image, path)
    except LabError as err:
        if "File not found" in str(err):
            return "(none)"
        raise


@pytest.fixture(scope="module")
def overlay_run(oslab: OsLab, tmp_path_factory: pytest.TempPathFactory) -> OverlayRun:
    state = oslab.state
    client = next(c for c in state.clients if c.name == OVERLAY)
    topo = lab.topology.load(state.lab_dir)
    assert topo is not None
    console = state.lab_dir / bmc.BMC_DIR / OVERLAY / CONSOLE
    upper = oslab.luns[OVERLAY]
    work = tmp_path_factory.mktemp("overlay")
    install_check_script(str(upper), work, OVERLAY_SCRIPT, under="/upper")
    files = work / "v2"
    (files / "etc").mkdir(parents=True)
    (files / "etc" / "netboot-release").write_text("2\n")
    lab.run_cli(state, "image", "build", "deb12", "--debootstrap", "bookworm", "--files",
                str(files))  # deb12@2

    def cli(*args: str) -> dict:
        argv = lab.netboot_argv(Path(state.config), *args, "--json")
        done = subprocess.run(iproute.in_netns(topo.netns, argv), capture_output=True,
                              text=True, timeout=3 * OS_TIMEOUT, check=False)
        assert done.stdout, f"netboot {' '.join(args)}: {done.stderr}"
        answer = json.loads(done.stdout)
        return {"status": done.returncode, "progress": done.stderr,
                **(answer[0] if isinstance(answer, list) else answer)}

    def waiting(count: int) -> None:
        deadline = time.monotonic() + OS_TIMEOUT
        while console_text(console).count("TEST-WAITING") < count:
            assert time.monotonic() < deadline, (
                f"boot {count} of {OVERLAY} not up within {OS_TIMEOUT:.0f} s; console "
                f"{console}:\n" + "\n".join(console_text(console).splitlines()[-40:]))
            time.sleep(1)

    seconds: dict[str, float] = {}
    started = time.monotonic()
    assert cli("client", "power", client.mac, "on")["ok"]
    waiting(1)
    seconds["BMC power-on to the check script's report on v1"] = time.monotonic() - started
    started = time.monotonic()
    rolled = cli("rollout", "deb12@2", "--clients", OVERLAY, "--timeout", str(OS_TIMEOUT))
    seconds["rollout deb12@2 (soft off, boot, os-up on v2)"] = time.monotonic() - started
    waiting(2)
    started = time.monotonic()
    undone = cli("rollout", "--undo", "--timeout", str(OS_TIMEOUT))
    seconds["rollout --undo (soft off, boot, os-up on v1)"] = time.monotonic() - started
    waiting(3)
    started = time.monotonic()
    off = cli("client", "power", client.mac, "off")
    seconds["client power off (ACPI, Debian shuts down)"] = time.monotonic() - started
    text = console_text(console)
    boots = tuple({marker: reports(part, marker + " ")[0]
                   for marker in ("TEST-RELEASE", "TEST-MINE", "TEST-IDENTITY")}
                  for part in text.split("TEST-WAITING")[:3])
    images = load_config(state.config).storage.images
    return OverlayRun(boots, text, rolled, undone, off, seconds,
                      {path: read_or_none(upper, f"/upper{path}") for path in IDENTITY_FILES},
                      {version: {path: read_or_none(images / f"{version}.img", path)
                                 for path in ("/etc/machine-id", "/etc/netboot-release")}
                       for version in ("deb12@1", "deb12@2")})


def test_an_overlay_client_boots_debian_v1_and_writes_its_file(overlay_run, record_boot):
    for what, seconds in overlay_run.seconds.items():
        record_boot(f"Debian 12, method overlay: {what}", seconds)
    first = overlay_run.boots[0]
    assert first["TEST-RELEASE"] == ["none"] and first["TEST-MINE"] == ["none"]
    assert first["TEST-IDENTITY"][0] == OVERLAY


def test_a_rollout_boots_it_on_v2_through_its_bmc_and_its_file_is_still_there(overlay_run):
    assert overlay_run.rollout["status"] == 0, overlay_run.rollout["progress"]
    assert [(m["hostname"], m["previous_image"], m["result"])
            for m in overlay_run.rollout["moves"]] == [(OVERLAY, "deb12@1", "up")]
    second = overlay_run.boots[1]
    assert second["TEST-RELEASE"] == ["2"] and second["TEST-MINE"] == ["mine"]


def test_undo_brings_v1_back_and_the_file_is_still_there(overlay_run):
    assert overlay_run.undo["status"] == 0, overlay_run.undo["progress"]
    third = overlay_run.boots[2]
    assert third["TEST-RELEASE"] == ["none"] and third["TEST-MINE"] == ["mine"]


def test_the_overlay_client_keeps_its_identity_through_rollout_and_undo(overlay_run):
    identities = [boot["TEST-IDENTITY"] for boot in overlay_run.boots]
    assert identities[0] == identities[1] == identities[2]
    hostname, machine_id, key, initiator = identities[0]
    assert (hostname, len(machine_id)) == (OVERLAY, 32)
    assert key != "none" and initiator != "none"


def test_the_identity_lives_in_the_upper_layer_and_the_images_have_none(overlay_run):
    hostname, machine_id, _key, initiator = overlay_run.boots[0]["TEST-IDENTITY"]
    upper = overlay_run.upper
    assert upper["/etc/machine-id"].strip() == machine_id
    assert upper["/etc/hostname"].strip() == hostname
    assert upper["/etc/iscsi/initiatorname.iscsi"].strip() == f"InitiatorName={initiator}"
    assert upper["/etc/ssh/ssh_host_ed25519_key.pub"].startswith("ssh-ed25519 ")
    assert upper["/home/u/mine"] == "mine\n"
    assert {v: files["/etc/machine-id"] for v, files in overlay_run.images.items()} == {
        "deb12@1": "", "deb12@2": ""}
    assert overlay_run.images["deb12@2"]["/etc/netboot-release"] == "2\n"
    assert overlay_run.images["deb12@1"]["/etc/netboot-release"] == "(none)"


def test_each_power_off_shut_debian_down_cleanly_through_acpi(overlay_run):
    """The roll-out's, the undo's and `client power off`'s: the OS was asked and did."""
    assert overlay_run.off["ok"] and overlay_run.off["power"] == "off"
    assert overlay_run.off["done"].startswith("shut down by its OS in ")
    for ran in (overlay_run.rollout, overlay_run.undo):
        assert f"{OVERLAY}: shut down by its OS in " in ran["progress"]
    after_each_boot = overlay_run.console.split("TEST-WAITING")[1:]
    assert [POWER_DOWN in part for part in after_each_boot] == [True, True, True]
    assert all("I/O error" not in part.split(POWER_DOWN)[0] for part in after_each_boot)
