"""Overlay clients in the lab: two VMs boot the built-in image shared read-only under their
own upper layers, through the real `netboot serve`, tgtd and /init; then a roll-out moves
their lower layer to a new version and its undo moves it back, each upper kept.

One lab for the module (its clients added with --boot-method overlay); the tests read one
sequence of boots in order. The built-in image counts its boots in /netboot-boot-count,
which for an overlay client lands in its upper layer (``/upper/netboot-boot-count`` of the
upper's ext4), never in the image.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.host import iproute
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.luns import LOWER_LUN
from netboot.inventory.store import Inventory
from netboot.lab import lab, topology
from netboot.lab.rootfs import LabError, read_file
from netboot.lab.vm import Accel, Firmware
from netboot.target.model import Lun
from netboot.target.tgtmgmt import Mode, Operation, Request, call
from netboot.target.tgtshow import parse_targets
from tests.support.paths import make_reachable

UPPER_COUNT = "/upper/netboot-boot-count"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _upper_count(client: Client) -> int:
    try:
        return int(read_file(Path(str(client.lun_path)), UPPER_COUNT))
    except LabError as err:
        if "File not found" in str(err):
            return 0
        raise


@dataclass(frozen=True)
class Seen:
    """What one step left: boot results, each client's record, upper count and target LUNs."""

    results: dict[str, str]
    clients: dict[str, Client]
    counts: dict[str, int]
    luns: dict[str, tuple[Lun, ...]]
    serial: dict[str, str]
    image_sha: dict[str, str]


@dataclass(frozen=True)
class Run:
    before_sha: dict[str, str]
    first: Seen
    second: Seen
    rollout: dict
    rolled: Seen
    undo: dict
    undone: Seen


@pytest.fixture(scope="module")
def overlay_lab(tmp_path_factory: pytest.TempPathFactory, accel: Accel, lab_cache: Path,
                boot_timeout: float) -> Iterator[Run]:
    lab_dir = tmp_path_factory.mktemp("overlay-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    try:
        state = lab.up(lab_dir, 2, accel=accel, cache_dir=lab_cache, boot_method="overlay",
                       say=lambda _: None)
        config = load_config(state.config)
        vlan = topology.load(lab_dir)
        assert vlan is not None
        images = config.storage.images

        def seen(results: dict[str, str]) -> Seen:
            with Inventory(config.storage.database) as inventory:
                clients = {c.hostname: c for c in inventory.clients()}
            shown = parse_targets(call(state.tgt_control_port,
                                       Request(Mode.TARGET, Operation.SHOW), what="show"))
            by_iqn = {t.state.iqn: t.state.luns for t in shown}
            return Seen(results, clients, {h: _upper_count(c) for h, c in clients.items()},
                        {h: by_iqn.get(c.target_iqn, ()) for h, c in clients.items()},
                        {c.name: (lab_dir / "vms" / f"{c.name}.serial.log").read_text()
                         for c in state.clients
                         if (lab_dir / "vms" / f"{c.name}.serial.log").exists()},
                        {p.name: _sha256(p) for p in sorted(images.glob("*.img"))})

        def boot(count: int) -> Seen:
            progress, _ = lab.boot(lab_dir, count, Firmware.BIOS, boot_timeout,
                                   stream=io.StringIO())
            return seen({p.name: p.result for p in progress})

        def rollout(*args: str) -> dict:
            argv = lab.netboot_argv(Path(state.config), "rollout", *args, "--json")
            done = subprocess.run(iproute.in_netns(vlan.netns, argv), capture_output=True,
                                  text=True, timeout=1200, check=False)
            assert done.stdout, done.stderr
            return {"status": done.returncode, **json.loads(done.stdout),
                    "progress": done.stderr}

        before = {p.name: _sha256(p) for p in sorted(images.glob("*.img"))}
        first = boot(2)
        second = boot(1)
        lab.run_cli(state, "image", "build", "builtin", "--builtin")  # builtin@2
        rolled_out = rollout("builtin@2", "--all", "--canary", "1", "--batch", "1",
                             "--timeout", "300")
        rolled = seen({})
        undo = rollout("--undo", "--timeout", "300")
        yield Run(before, first, second, rolled_out, rolled, undo, seen({}))
    finally:
        lab.down(lab_dir)


def test_the_lab_clients_are_overlay_clients_on_the_builtin_image(overlay_lab):
    assert {(c.boot_method, c.image) for c in overlay_lab.first.clients.values()} == {
        (BootMethod.OVERLAY, "builtin@1")}


def test_both_overlay_clients_reach_their_root(overlay_lab):
    first = overlay_lab.first
    assert first.results == {"lab-01": "ok", "lab-02": "ok"}
    for name in ("lab-01", "lab-02"):
        assert f"NETBOOT-ROOT-OK {name}" in first.serial[name]
        assert "overlay mounted" in first.serial[name]


def test_each_boot_count_lands_in_its_own_upper_layer(overlay_lab):
    assert overlay_lab.first.counts == {"lab-01": 1, "lab-02": 1}


def test_the_image_file_is_unchanged_by_the_boots(overlay_lab):
    assert overlay_lab.first.image_sha == overlay_lab.before_sha
    assert overlay_lab.second.image_sha == overlay_lab.before_sha


def test_both_targets_export_the_same_image_file_read_only(overlay_lab):
    first = overlay_lab.first
    lowers = {name: [lun for lun in luns if lun.number == LOWER_LUN]
              for name, luns in first.luns.items()}
    image = str(next(iter(first.clients.values())).lun_path)  # an upper, not the image
    assert lowers["lab-01"] == lowers["lab-02"]
    (lower,) = lowers["lab-01"]
    assert lower.readonly and lower.path.endswith("/builtin@1.img") and lower.path != image
    uppers = {name: [lun for lun in luns if lun.number == 1] for name, luns in first.luns.items()}
    assert all(len(u) == 1 and not u[0].readonly for u in uppers.values())


def test_a_second_boot_counts_in_that_clients_upper_only(overlay_lab):
    assert overlay_lab.second.results == {"lab-01": "ok"}
    assert overlay_lab.second.counts == {"lab-01": 2, "lab-02": 1}


def test_a_rollout_moves_the_lower_layer_and_keeps_each_upper(overlay_lab):
    rolled = overlay_lab.rolled
    assert overlay_lab.rollout["status"] == 0, overlay_lab.rollout["progress"]
    assert {(c.image, c.booted_image) for c in rolled.clients.values()} == {
        ("builtin@2", "builtin@2")}
    assert rolled.counts == {"lab-01": 3, "lab-02": 2}  # the counts go on: same uppers
    assert {c.lun_path for c in rolled.clients.values()} == {
        c.lun_path for c in overlay_lab.first.clients.values()}
    assert {str(lun.path).rsplit("/", 1)[-1] for luns in rolled.luns.values()
            for lun in luns if lun.number == LOWER_LUN} == {"builtin@2.img"}


def test_undo_puts_the_lower_layer_back_and_keeps_each_upper(overlay_lab):
    undone = overlay_lab.undone
    assert overlay_lab.undo["status"] == 0, overlay_lab.undo["progress"]
    assert {(c.image, c.booted_image) for c in undone.clients.values()} == {
        ("builtin@1", "builtin@1")}
    assert undone.counts == {"lab-01": 4, "lab-02": 3}
    assert undone.image_sha["builtin@1.img"] == overlay_lab.before_sha["builtin@1.img"]
