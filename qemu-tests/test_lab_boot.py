"""End to end: QEMU clients PXE-boot through the real `netboot serve` and tgtd to their own LUN.

The lab is made with the real CLI (kernel fetch, initramfs build, image
build, client add); clients run the built-in image, which prints
NETBOOT-ROOT-OK and counts its boots on its own LUN, read back with debugfs.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.host import iproute
from netboot.inventory.store import Inventory
from netboot.lab import lab, topology
from netboot.lab.markers import Stage
from netboot.lab.rootfs import boot_count
from netboot.lab.vm import Firmware, Vm, VmSpec
from netboot.target.tgtmgmt import Mode, Operation, Param, Request, call
from netboot.target.tgtshow import parse_targets


def _luns(state: lab.LabState) -> dict[str, Path]:
    config = load_config(state.config)
    with Inventory(config.storage.database) as inventory:
        return {c.mac: Path(c.lun_path) for c in inventory.clients()}


def _counts(state: lab.LabState) -> dict[str, int]:
    return {mac: boot_count(lun) for mac, lun in _luns(state).items()}


def _serial(lab_dir: Path, name: str) -> str:
    return (lab_dir / "vms" / f"{name}.serial.log").read_text()


@pytest.mark.parametrize("firmware", list(Firmware), ids=str)
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
