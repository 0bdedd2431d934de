"""Roll-outs on a lab of three VMs, as a user runs them: the real `netboot rollout` (in the
lab's namespace, where the BMCs answer) powers each VM off through its simulated BMC,
reimages it, boots it from the network and waits for the built-in image's os-up report.

One lab for the module; one sequence of roll-outs, each test reading its part: to a good
version (canary, then a batch of two), to a broken one (no /sbin/init: the canary fails
and the roll-out stops), and the undo of that one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.host import iproute
from netboot.inventory.clients import Client
from netboot.inventory.store import Inventory
from netboot.lab import lab, topology
from netboot.lab.vm import Accel
from tests.support.paths import make_reachable


@dataclass(frozen=True)
class Ran:
    """One `netboot rollout ... --json`: its exit status, record and progress lines."""

    status: int
    record: dict
    progress: str


@dataclass(frozen=True)
class Rollouts:
    good: Ran
    after_good: dict[str, Client]
    broken: Ran
    after_broken: dict[str, Client]
    undone: Ran
    after_undo: dict[str, Client]


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory: pytest.TempPathFactory, accel: Accel,
             lab_cache: Path) -> Iterator[Rollouts]:
    lab_dir = tmp_path_factory.mktemp("rollout-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    try:
        state = lab.up(lab_dir, 3, accel=accel, cache_dir=lab_cache, say=lambda _: None)
        vlan = topology.load(lab_dir)
        assert vlan is not None
        config = load_config(state.config)

        def rollout(*args: str) -> Ran:
            argv = lab.netboot_argv(Path(state.config), "rollout", *args, "--json")
            done = subprocess.run(iproute.in_netns(vlan.netns, argv), capture_output=True,
                                  text=True, timeout=1200, check=False)
            assert done.stdout, done.stderr
            return Ran(done.returncode, json.loads(done.stdout), done.stderr)

        def clients() -> dict[str, Client]:
            with Inventory(config.storage.database) as inventory:
                return {c.hostname: c for c in inventory.clients()}

        lab.run_cli(state, "image", "build", "builtin", "--builtin")  # builtin@2
        good = rollout("builtin@2", "--all", "--canary", "1", "--batch", "2",
                       "--timeout", "300")
        after_good = clients()
        empty = lab_dir / "empty"
        empty.mkdir()
        lab.run_cli(state, "image", "build", "builtin", "--from-dir", str(empty))  # @3
        broken = rollout("builtin@3", "--clients", "lab-*", "--canary", "1", "--timeout",
                         "300")
        after_broken = clients()
        undone = rollout("--undo", "--timeout", "300")
        yield Rollouts(good, after_good, broken, after_broken, undone, clients())
    finally:
        lab.down(lab_dir)


def test_a_rollout_brings_every_client_to_os_up_on_the_new_version(rollouts):
    assert rollouts.good.status == 0, rollouts.good.progress
    assert [(m["hostname"], m["previous_image"], m["result"])
            for m in rollouts.good.record["moves"]] == [
        ("lab-01", "builtin@1", "up"), ("lab-02", "builtin@1", "up"),
        ("lab-03", "builtin@1", "up")]
    assert {c.booted_image for c in rollouts.after_good.values()} == {"builtin@2"}


def test_the_canary_batch_goes_first_and_alone(rollouts):
    batches = [line for line in rollouts.good.progress.splitlines()
               if line.startswith("batch ") and ": " in line]
    assert batches == ["batch 1/2: lab-01", "batch 2/2: lab-02, lab-03"]


def test_a_broken_version_stops_the_rollout_at_its_canary(rollouts):
    assert rollouts.broken.status == 1
    assert rollouts.broken.record["stopped"].startswith("batch 1: lab-01 failed after stage")
    assert [m["hostname"] for m in rollouts.broken.record["moves"]] == ["lab-01"]


def test_the_clients_after_a_stopped_rollout_are_left_on_their_version(rollouts):
    assert rollouts.after_broken["lab-01"].image == "builtin@3"
    assert {(c.image, c.booted_image) for name, c in rollouts.after_broken.items()
            if name != "lab-01"} == {("builtin@2", "builtin@2")}


def test_undo_brings_the_moved_client_back_to_os_up_on_its_version(rollouts):
    assert rollouts.undone.status == 0, rollouts.undone.progress
    assert [(m["hostname"], m["result"]) for m in rollouts.undone.record["moves"]] == [
        ("lab-01", "undone: up")]
    back = rollouts.after_undo["lab-01"]
    assert (back.image, back.booted_image, back.previous_lun_path) == (
        "builtin@2", "builtin@2", None)
