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
second boot reads the data back. A second lab, on the session's Ceph cluster,
imports the deb12 image file into its pool and boots its client once from its
RBD clone (method initramfs).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.inventory.store import Inventory
from netboot.lab import ceph, lab
from netboot.lab.vm import Accel, Vm, VmFactory, VmSpec
from netboot.storage.backend import open_storage
from netboot.storage.bootdisk import PARTITION_START, SECTOR
from netboot.target.tgtd import stop_tgtd
from tests.support.paths import make_reachable

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

CHECK_SCRIPT = """#!/bin/sh
# Written into the clone's root by qemu-tests/test_os_boot.py; one console line per result.
D=/var/lib/netboot-test
systemctl is-system-running --wait >/dev/null 2>&1
while systemctl is-active -q netboot-os-up.service; do sleep 1; done
exec >/dev/ttyS0 2>&1  # afresh: a getty starting meanwhile hangs the first one up
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


def install_check_script(filesystem: str, work: Path, text: str) -> None:
    """Put a check script and its unit (enabled) into an ext4 filesystem with debugfs -w;
    ``filesystem`` is a LUN, or ``LUN?offset=BYTES`` for the partition of a sanboot disk."""
    script, unit = work / "netboot-test", work / "netboot-test.service"
    script.write_text(text)
    script.chmod(0o755)
    unit.write_text(CHECK_UNIT)
    unit.chmod(0o644)
    commands = (f"cd /usr/local/sbin\nwrite {script} netboot-test\n"
                f"cd /etc/systemd/system\nwrite {unit} netboot-test.service\n"
                "mkdir multi-user.target.wants\ncd multi-user.target.wants\n"
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
        state = lab.up(lab_dir, 3, accel=accel, cache_dir=lab_cache, say=lambda _: None)
        seconds = {}
        for name, extra in (("deb12", ()), ("deb12san", ("--sanboot",))):
            started = time.monotonic()
            lab.run_cli(state, "image", "build", name, "--debootstrap", "bookworm", *extra)
            seconds[name] = time.monotonic() - started
        for client, (image, method, size) in zip(state.clients, (
                ("deb12", "initramfs", ()), ("deb12", "initramfs", ()),
                ("deb12san", "sanboot", ("--size", SANBOOT_LUN))), strict=True):
            lab.run_cli(state, "client", "remove", "--purge", client.mac)
            lab.run_cli(state, "client", "add", client.mac, "--hostname", client.name,
                        "--image", image, "--boot-method", method, *size)
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


@pytest.fixture(scope="module")
def rbd_clone(oslab: OsLab, tmp_path_factory: pytest.TempPathFactory, accel: Accel,
              lab_cache: Path, ceph_cluster: ceph.Cluster) -> Boot:
    """One boot of lab-01 of a lab on Ceph, from its RBD clone of the deb12 image file
    oslab built (imported with the CLI), until the OS is up; all of it removed after."""
    built = open_storage(load_config(oslab.state.config)).find_image("deb12")
    assert built is not None
    lab_dir = tmp_path_factory.mktemp("os-ceph-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    factory = VmFactory(lab_dir / "vms")
    try:
        state = lab.up(lab_dir, 1, accel=accel, cache_dir=lab_cache, say=lambda _: None,
                       storage=lab.LabStorage.CEPH, ceph_dir=ceph_cluster.directory)
        client = state.clients[0]
        lab.run_cli(state, "image", "import", "deb12", built.location.name)
        lab.run_cli(state, "client", "remove", "--purge", client.mac)
        lab.run_cli(state, "client", "add", client.mac, "--hostname", client.name,
                    "--image", "deb12", "--boot-method", "initramfs")
        try:
            topo = lab.topology.load(lab_dir)
            assert topo is not None
            vm = factory.start(VmSpec(f"{client.name}-rbd", client.mac, topo.taps[0],
                                      accel=accel, memory_mb=MEMORY_MB), topo.netns)
            return wait_up(vm)
        finally:  # the image is the test's to remove (lab down removes its own)
            factory.stop_all()
            lab.run_cli(state, "client", "remove", "--purge", client.mac)
            lab.run_cli(state, "image", "remove", "deb12")
    finally:
        lab.down(lab_dir)


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


def test_initramfs_clone_of_the_imported_image_on_rbd_boots_to_a_running_system(rbd_clone,
                                                                              record_boot):
    assert reports(rbd_clone.console, "NETBOOT-OS-UP ")[0] == ["lab-01", "running"]
    record_boot("Debian 12 on an RBD clone, method initramfs: power-on to NETBOOT-OS-UP",
                rbd_clone.up_at)


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
