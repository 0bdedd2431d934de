"""End to end: QEMU clients PXE-boot through the real `netboot serve` and tgtd to their own LUN.

The lab is made with the real CLI (kernel fetch, initramfs build, image
build, client add); clients run the built-in image, which prints
NETBOOT-ROOT-OK and counts its boots on its own LUN, read back with debugfs.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.host import iproute
from netboot.host.files import file_lock
from netboot.http.server import NOT_READY_WAIT
from netboot.inventory.stages import ORDER
from netboot.inventory.store import Inventory
from netboot.lab import lab, topology
from netboot.lab.markers import Stage
from netboot.lab.rootfs import boot_count
from netboot.lab.vm import Firmware, Vm, VmSpec
from netboot.target.tgt import backend_lock
from netboot.target.tgtmgmt import Mode, Operation, Param, Request, call
from netboot.target.tgtshow import parse_targets
from tests.support.browser import chromium_in


def _luns(state: lab.LabState) -> dict[str, Path]:
    config = load_config(state.config)
    with Inventory(config.storage.database) as inventory:
        return {c.mac: Path(c.lun_path) for c in inventory.clients()}


def _counts(state: lab.LabState) -> dict[str, int]:
    return {mac: boot_count(lun) for mac, lun in _luns(state).items()}


def _serial(lab_dir: Path, name: str) -> str:
    return (lab_dir / "vms" / f"{name}.serial.log").read_text()


@pytest.mark.parametrize("firmware", [Firmware.BIOS, Firmware.UEFI], ids=str)  # the iPXE lab
def test_client_boots_to_its_own_root_and_counts_the_boot_there(shared_lab, boot_timeout,
                                                                record_boot, firmware):
    lab_dir, state = shared_lab
    before = _counts(state)
    progress, _ = lab.boot(lab_dir, 1, firmware, boot_timeout, stream=io.StringIO())
    first = state.clients[0]
    assert progress[0].result == "ok"
    record_boot(f"{firmware} {state.accel} netboot lab, root mounted",
                progress[0].times[Stage.ROOT])
    assert f"NETBOOT-ROOT-OK {first.name}" in _serial(lab_dir, first.name)
    assert _counts(state) == {**before, first.mac: before[first.mac] + 1}


# Runs in the page: keeps each text the client's stage cell shows (the page redraws its table
# at every poll) in window.netbootSeen.
WATCH_ROW = """mac => {
  window.netbootSeen = [];
  const note = () => {
    const cell = document.querySelector(`tr[data-mac="${mac}"] td.stage`);
    const seen = window.netbootSeen;
    if (cell && seen[seen.length - 1] !== cell.textContent) seen.push(cell.textContent);
  };
  new MutationObserver(note).observe(document.querySelector("#fleet tbody"),
                                     {childList: true, subtree: true});
  note();
}"""
# The newest boot's timeline (drawn first) of the client's row: its stages and segments.
TIMELINE = """mac => {
  const svg = document.querySelector(`tr[data-mac="${mac}"] svg.timeline`);
  return {stages: svg.dataset.stages.split(" "),
          widths: [...svg.querySelectorAll("rect.segment")].map(r => r.width.baseVal.value)};
}"""
PAGE_TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class PageSeen:
    """What headless Chromium showed on the admin page while a lab client booted."""

    result: str  # the boot's, as `lab boot` reports it
    stages: list[str]  # the client's stage cell, each change in the order shown
    timeline: list[str]  # the stages of the newest boot's timeline
    widths: list[float]  # its segments' widths in pixels
    screenshot: Path


@pytest.fixture(scope="module")
def page_during_boot(shared_lab, boot_timeout, tmp_path_factory) -> PageSeen:
    """The fleet page open in Chromium, in the lab's namespace, from before a BIOS boot of
    the first client until its os-up report is drawn."""
    lab_dir, state = shared_lab
    admin = load_config(state.config).admin
    vlan = topology.load(lab_dir)
    assert vlan is not None
    mac, work = state.clients[0].mac, tmp_path_factory.mktemp("page")
    watching, booted = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def browse() -> None:
        try:
            with chromium_in(vlan.netns, work) as browser:
                page = browser.new_page(viewport={"width": 1100, "height": 420})
                page.goto(f"http://{admin.address}:{admin.port}/")
                page.wait_for_selector(f'tr[data-mac="{mac}"]', timeout=PAGE_TIMEOUT_MS)
                page.evaluate(WATCH_ROW, mac)
                watching.set()
                booted.wait(boot_timeout + 60)
                page.wait_for_function(
                    "mac => window.netbootSeen[window.netbootSeen.length - 1] === 'os-up'",
                    arg=mac, timeout=PAGE_TIMEOUT_MS)
                seen.update(page.evaluate(TIMELINE, mac), seen=page.evaluate(
                    "window.netbootSeen"), screenshot=work / "admin-page.png")
                page.screenshot(path=work / "admin-page.png", full_page=True)
        except Exception as error:  # re-raised in the test's thread
            seen["error"] = error
        finally:
            watching.set()

    browser = threading.Thread(target=browse, name="chromium")
    browser.start()
    try:
        watching.wait(60)
        assert "error" not in seen, seen.get("error")
        progress, _ = lab.boot(lab_dir, 1, Firmware.BIOS, boot_timeout, stream=io.StringIO())
    finally:
        booted.set()
        browser.join(boot_timeout + 120)
    if "error" in seen:
        raise AssertionError(f"the page: {seen['error']}")
    return PageSeen(progress[0].result, seen["seen"], seen["stages"], seen["widths"],
                    seen["screenshot"])


def test_the_admin_page_follows_a_lab_boot_live_to_the_clients_os(page_during_boot):
    seen = page_during_boot
    assert seen.result == "ok"
    # redrawn while the boot ran: a stage before the root, then the running system
    assert {"dhcp", "loader", "kernel", "initramfs", "network", "login"} & set(seen.stages)
    assert seen.stages[-1] == "os-up", seen.stages


def test_the_admin_page_draws_the_boots_timeline_through_the_root(page_during_boot):
    timeline = page_during_boot.timeline  # one bar for the whole boot, chain-loads and all
    assert timeline[0] == "dhcp" and timeline[-1] == "os-up", timeline
    assert set(timeline) == set(ORDER), timeline
    assert len(page_during_boot.widths) == len(timeline) and min(page_during_boot.widths) > 0
    assert page_during_boot.screenshot.stat().st_size > 0


def test_a_lab_client_reports_os_up_from_its_root(page_during_boot, shared_lab):
    _, state = shared_lab
    _, client = _record(state, state.clients[0].mac)
    assert client.last_stage == "os-up"


def test_uefi_http_boot_reaches_the_root_with_no_tftp_at_all(shared_lab, vms, accel,
                                                             boot_timeout, record_boot):
    lab_dir, state = shared_lab
    vlan = topology.load(lab_dir)
    assert vlan is not None
    client = state.clients[1]
    capture = subprocess.Popen(vlan.argv(["tcpdump", "-i", vlan.bridge, "-n", "-l",
                                          "udp port 67 or udp port 69"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "listening on" not in (line := capture.stderr.readline()):
            assert line, "tcpdump did not start"
        vm = vms.start(VmSpec(client.name, client.mac, vlan.taps[1],
                              firmware=Firmware.UEFI_HTTP, accel=accel), vlan.netns)
        marker = vm.wait_for(f"NETBOOT-ROOT-OK {client.name}", boot_timeout)
    finally:
        capture.terminate()
    packets = capture.communicate(timeout=30)[0].splitlines()
    assert any(".67:" in p or ".67 " in p for p in packets), packets  # the capture saw DHCP
    assert not [p for p in packets if ".69:" in p or ".69 " in p], packets
    log = (lab_dir / "logs" / "netboot-serve.log").read_text()
    assert f"[{client.mac}]" in log and "ipxe.efi (arch 16)" in log
    record_boot(f"UEFI HTTP boot {accel} netboot lab, root mounted", marker.at)


def test_two_clients_at_once_each_reach_their_own_root(shared_lab, boot_timeout):
    lab_dir, state = shared_lab
    before = _counts(state)
    progress, _ = lab.boot(lab_dir, 2, Firmware.BIOS, boot_timeout, stream=io.StringIO())
    assert [p.result for p in progress] == ["ok", "ok"]
    assert all(Stage.LOGIN in p.times for p in progress)
    assert _counts(state) == {mac: count + 1 for mac, count in before.items()}


def test_client_booted_twice_has_counted_two_boots(shared_lab, boot_timeout):
    lab_dir, state = shared_lab
    first = state.clients[0]
    before = _counts(state)[first.mac]
    for _ in range(2):
        progress, _ = lab.boot(lab_dir, 1, Firmware.BIOS, boot_timeout, stream=io.StringIO())
        assert progress[0].result == "ok"
    assert _counts(state)[first.mac] == before + 2


HOLD_TARGET = NOT_READY_WAIT + 12  # seconds the test keeps the window's renewal waiting


def test_a_boot_whose_window_is_held_up_asks_again_as_told_and_reaches_its_root(
        shared_lab, boot_timeout):
    """iPXE obeys the 503 and Retry-After its script gets while its boot window is prepared:
    the target's lock is held from before the boot until well after iPXE asks."""
    lab_dir, state = shared_lab
    config = load_config(state.config)
    first = state.clients[0]
    serve_log = lab_dir / "logs" / "netboot-serve.log"
    seen = serve_log.stat().st_size
    held = threading.Event()

    def hold_the_target() -> None:  # what a long renewal ahead of this one would do
        with file_lock(backend_lock(config.storage.state_dir, config.target.tgt_control_port)):
            held.set()
            time.sleep(HOLD_TARGET)

    holder = threading.Thread(target=hold_the_target)
    holder.start()
    try:
        assert held.wait(30), "the target's lock was not taken"
        progress, _ = lab.boot(lab_dir, 1, Firmware.BIOS, boot_timeout, stream=io.StringIO())
    finally:
        holder.join()
    assert progress[0].result == "ok"
    with serve_log.open() as log:
        log.seek(seen)
        asked = [line for line in log if "to retry" in line and first.mac in line]
    assert asked and all("boot window is still being prepared" in line for line in asked)
    assert progress[0].times[Stage.KERNEL] > HOLD_TARGET / 2  # it waited, then went on


def _record(state: lab.LabState, mac: str):
    config = load_config(state.config)
    with Inventory(config.storage.database) as inventory:
        return config, inventory.get(mac)


def test_each_boot_renews_the_clients_chap_and_the_target_refuses_the_old_secret(
        shared_lab, boot_timeout):
    lab_dir, state = shared_lab
    _, before = _record(state, state.clients[0].mac)
    progress, _ = lab.boot(lab_dir, 1, Firmware.BIOS, boot_timeout, stream=io.StringIO())
    assert progress[0].result == "ok"
    config, after = _record(state, before.mac)
    assert (after.chap_secret, after.mutual_secret) != (before.chap_secret, before.mutual_secret)
    vlan = topology.load(lab_dir)
    assert vlan is not None
    portal, port = config.portal

    def read_capacity(secret: str) -> subprocess.CompletedProcess[str]:
        url = f"iscsi://{before.chap_user}%{secret}@{portal}:{port}/{before.target_iqn}/1"
        return subprocess.run(iproute.in_netns(vlan.netns, [
            "iscsi-readcapacity16", "-s", "-i", before.initiator_iqn, url]),
            capture_output=True, text=True, timeout=60, check=False)

    refused = read_capacity(before.chap_secret)
    assert refused.returncode != 0 and "Authentication failure" in refused.stderr
    assert read_capacity(after.chap_secret).returncode == 0


def test_pxelinux_client_loads_everything_over_tftp_and_reaches_its_root(netboot_lab,
                                                                          boot_timeout):
    state = netboot_lab(1, loader="pxelinux")
    progress, _ = lab.boot(state.lab_dir, 1, Firmware.BIOS, boot_timeout, stream=io.StringIO())
    assert progress[0].result == "ok"
    console = _serial(state.lab_dir, state.clients[0].name)
    assert "PXELINUX" in console and "NETBOOT-ROOT-OK" in console
    assert _counts(state) == {state.clients[0].mac: 1}


def _stranger(state: lab.LabState, vms, accel) -> Vm:
    """A VM whose MAC netboot does not know: the lab's client, unregistered."""
    mac = state.clients[0].mac
    lab.run_cli(state, "client", "remove", mac, "--purge")
    vlan = topology.load(state.lab_dir)
    assert vlan is not None
    return vms.start(VmSpec("stranger", mac, vlan.taps[0], accel=accel), vlan.netns)


def test_unregistered_machine_gets_no_boot_under_policy_ignore(netboot_lab, vms, accel,
                                                               boot_timeout):
    state = netboot_lab(1, unknown="ignore")
    vm = _stranger(state, vms, accel)
    vm.wait_for("Nothing to boot", boot_timeout)  # iPXE got an IPv6 address, no boot file
    with Inventory(load_config(state.config).storage.database) as inventory:
        assert [m.mac for m in inventory.unknown_machines()] == [vm.spec.mac]


def test_unregistered_machine_is_told_so_under_policy_boot(netboot_lab, vms, accel,
                                                           boot_timeout):
    state = netboot_lab(1, unknown="boot")
    vm = _stranger(state, vms, accel)
    line = vm.wait_for("not registered", boot_timeout)
    assert line.text == f"netboot: not registered: MAC {vm.spec.mac}"


def test_serve_restarted_during_the_boot_loader_then_a_reboot_succeeds(netboot_lab, vms, accel,
                                                                        boot_timeout):
    state = netboot_lab(1)
    vlan = topology.load(state.lab_dir)
    assert vlan is not None
    client = state.clients[0]
    vm = vms.start(VmSpec(client.name, client.mac, vlan.taps[0], accel=accel), vlan.netns)
    vm.wait_for(r"boot\.ipxe\.\.\. ok", boot_timeout)  # iPXE runs netboot's script now
    state = lab.restart_serve(state)
    # Either it gets there anyway, or it says clearly why not.
    outcome = vm.wait_for(r"NETBOOT-ROOT-OK|FAILED at|booting failed", boot_timeout)
    assert outcome.text == f"NETBOOT-ROOT-OK {client.name}" or "failed" in outcome.text.lower()
    vm.stop()
    progress, _ = lab.boot(state.lab_dir, 1, Firmware.BIOS, boot_timeout, stream=io.StringIO())
    assert progress[0].result == "ok"


def _change_chap_secret_behind_netboot(state: lab.LabState, mac: str) -> None:
    """Give the client's CHAP account another password with raw requests, as an admin might.

    The lab runs without discovery CHAP, so the account is bound to this
    client's target alone, as its only (so last) account: unbinding it is
    safe with tgt (an unbind that is not of the last slot crashes tgtd).
    """
    config = load_config(state.config)
    with Inventory(config.storage.database) as inventory:
        client = inventory.get(mac)
    port = state.tgt_control_port
    shown = parse_targets(call(port, Request(Mode.TARGET, Operation.SHOW), what="show"))
    tid = next(t.tid for t in shown if t.state.iqn == client.target_iqn)
    assert [t.state.incoming for t in shown if t.state.iqn == client.target_iqn] == [
        (client.chap_user,)]
    other = "x" * 16 if client.chap_secret != "x" * 16 else "y" * 16
    user = ((Param.USER, client.chap_user),)
    for request in (Request(Mode.ACCOUNT, Operation.UNBIND, tid=tid, params=user),
                    Request(Mode.ACCOUNT, Operation.DELETE, params=user),
                    Request(Mode.ACCOUNT, Operation.NEW, params=user, secret=other),
                    Request(Mode.ACCOUNT, Operation.BIND, tid=tid, params=user)):
        call(port, request, what=f"{request.op.name.lower()} account {client.chap_user}")


def test_client_whose_chap_secret_changed_on_the_target_is_rejected_and_its_lun_untouched(
        netboot_lab, vms, accel, boot_timeout):
    state = netboot_lab(1, discovery_auth=False)
    client = state.clients[0]
    lun = _luns(state)[client.mac]
    before = hashlib.sha256(lun.read_bytes()).hexdigest()
    lab.stop_serve(state)  # so no reconcile runs while the account is half changed
    # per-boot rotation would set the account right at the boot: this test is of a target
    # whose secret differs at the login
    config = Path(state.config)
    config.write_text(config.read_text().replace("target:\n", "target:\n  rotate_chap: never\n",
                                                 1))
    _change_chap_secret_behind_netboot(state, client.mac)
    state = lab.restart_serve(state)  # its start-up reconcile cannot tell the secret changed
    vlan = topology.load(state.lab_dir)
    assert vlan is not None
    vm = vms.start(VmSpec(client.name, client.mac, vlan.taps[0], accel=accel), vlan.netns)
    line = vm.wait_for("CHAP rejected", boot_timeout)
    assert "CHAP rejected: the target refused user" in line.text
    vm.stop()
    assert hashlib.sha256(lun.read_bytes()).hexdigest() == before
