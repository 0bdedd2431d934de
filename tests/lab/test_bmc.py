"""The lab's simulated BMCs: where they answer, their files, and their chassis_control
starting and stopping a real QEMU (no network card: nothing leaves the VM)."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from netboot.lab import bmc, bmc_control, qmp
from netboot.lab.topology import Topology
from netboot.lab.vm import VmSpec, spec_from_json, spec_json
from tests.support.waiting import eventually

TOPOLOGY = Topology("nbltest", "nbltest-br", ("nbltest-t0", "nbltest-t1"),
                    IPv4Interface("198.18.0.1/24"), Path("/lab"))


def test_client_n_has_its_bmc_on_the_server_address_at_port_6230_plus_n(tmp_path):
    second = bmc.plan(tmp_path, TOPOLOGY, "lab-02", 2)
    assert (second.address, second.port, second.serial_port) == (IPv4Address("198.18.0.1"),
                                                                 6232, 7232)
    assert second.record("pw").url == "ipmi://admin@198.18.0.1:6232"
    assert second.directory == tmp_path / "bmcs" / "lab-02"


def test_the_lab_password_is_fresh_and_0600(tmp_path):
    first = bmc.new_password(tmp_path).read_text()
    path = bmc.new_password(tmp_path)
    assert len(path.read_text()) == 16 and path.read_text() != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_sim_config_holds_the_password_0600_and_runs_the_control(tmp_path):
    sim = bmc.plan(tmp_path, TOPOLOGY, "lab-01", 1)
    bmc.prepare(sim, VmSpec("lab-01", "52:54:00:00:00:01", "nbltest-t0"), "Pw-0123")
    config = sim.directory / bmc.CONFIG
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert "addr 198.18.0.1 6231" in text and "serial 15 198.18.0.1 7231 codec VM" in text
    assert 'user 2 true "admin" "Pw-0123" admin 10 md5' in text
    assert f'chassis_control "{bmc.control_command(sim)}"' in text
    assert "-m netboot.lab.bmc_control" in bmc.control_command(sim)


def test_the_vm_the_bmc_starts_is_lab_boots_vm_with_an_ipmi_interface(tmp_path):
    sim = bmc.plan(tmp_path, TOPOLOGY, "lab-01", 1)
    spec = VmSpec("lab-01", "52:54:00:00:00:01", "nbltest-t0")
    bmc.prepare(sim, spec, "Pw-0123")
    started = bmc_control.load_spec(sim.directory)
    assert started.extra == bmc.vm_devices(sim)
    assert bmc.ipmi_device(sim)[0] in started.extra and "-qmp" in started.extra
    assert (started.name, started.mac, started.tap, started.accel) == (spec.name, spec.mac,
                                                                       spec.tap, spec.accel)


def test_a_vm_spec_survives_json():
    spec = VmSpec("x", "52:54:00:00:00:09", None, kernel=Path("/k"), extra=("-a", "b"))
    assert spec_from_json(json.loads(json.dumps(spec_json(spec)))) == spec


@pytest.fixture
def control_dir(tmp_path: Path):
    """A BMC dir whose VM has no network card (so it needs no tap and reaches nothing)."""
    spec = VmSpec("bmc-test-vm", "52:54:00:00:00:09", None, memory_mb=64)
    (tmp_path / bmc_control.SPEC).write_text(json.dumps(spec_json(spec)))
    yield tmp_path
    bmc_control.main([str(tmp_path), "set", "power", "0"])


def _get(directory: Path, *names: str, capsys) -> list[str]:
    assert bmc_control.main([str(directory), "get", *names]) == 0
    return capsys.readouterr().out.split()


def test_power_on_starts_the_vm_and_power_off_stops_it(control_dir, capsys):
    assert _get(control_dir, "power", capsys=capsys) == ["power:0"]
    assert bmc_control.main([str(control_dir), "set", "power", "1"]) == 0
    pid = bmc_control.running_pid(control_dir)
    assert pid is not None
    assert b"bmc-test-vm" in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert _get(control_dir, "power", capsys=capsys) == ["power:1"]
    assert bmc_control.main([str(control_dir), "set", "power", "0"]) == 0
    assert _get(control_dir, "power", capsys=capsys) == ["power:0"]


def test_the_boot_device_is_used_up_by_the_next_power_on(control_dir, capsys):
    assert bmc_control.main([str(control_dir), "set", "boot", "pxe"]) == 0
    assert _get(control_dir, "boot", capsys=capsys) == ["boot:pxe"]
    bmc_control.main([str(control_dir), "set", "power", "1"])
    assert _get(control_dir, "boot", capsys=capsys) == ["boot:default"]
    assert "boot device pxe" in (control_dir / bmc_control.LOG).read_text()


def test_an_unknown_parameter_is_refused_on_stdout_with_status_1(control_dir, capsys):
    assert bmc_control.main([str(control_dir), "set", "colour", "red"]) == 1
    assert capsys.readouterr().out.strip() == "Invalid parameter: colour"


def test_a_soft_off_presses_the_power_button_of_the_running_vm(control_dir, capsys):
    """The VM runs no OS here, so it stays on: what is tested is that QEMU took the press."""
    assert bmc_control.main([str(control_dir), "set", "shutdown", "1"]) == 0  # off: nothing
    spec = bmc_control.load_spec(control_dir)
    (control_dir / bmc_control.SPEC).write_text(json.dumps(spec_json(replace(
        spec, extra=qmp.monitor_argv(control_dir / bmc_control.QMP)))))
    bmc_control.main([str(control_dir), "set", "power", "1"])
    assert eventually(lambda: (control_dir / bmc_control.QMP).exists(), 10)
    assert bmc_control.main([str(control_dir), "set", "shutdown", "1"]) == 0
    assert "pressed the VM's power button (ACPI)" in (control_dir / bmc_control.LOG).read_text()
    assert _get(control_dir, "power", capsys=capsys) == ["power:1"]
