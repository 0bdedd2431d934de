"""The file servers' stage recorder: every stage queued is written, in batches, in order."""

from __future__ import annotations

import pytest

from netboot.inventory.pool import InventoryPool
from netboot.inventory.recorder import StageRecorder
from netboot.inventory.stages import Stage
from netboot.inventory.store import open_inventory
from netboot.provisioning.clients import add_client

A, B = "52:54:00:00:00:01", "52:54:00:00:00:02"


@pytest.fixture
def recorder(config, inventory):
    for mac in (A, B):
        add_client(config, inventory, mac)
    pool = InventoryPool(lambda: open_inventory(config))
    made = StageRecorder(pool, pause=0.2)
    made.start()
    yield made
    made.stop()
    pool.stop()


def test_stages_queued_together_are_all_logged_in_order(recorder, inventory):
    for stage in (Stage.LOADER, Stage.KERNEL, Stage.INITRAMFS):
        recorder.record(A, stage)
    recorder.record(B, Stage.LOADER)
    recorder.flush()
    logged = inventory.stage_log()
    assert [stage for stage, _ in logged[A]] == [Stage.LOADER, Stage.KERNEL, Stage.INITRAMFS]
    assert [stage for stage, _ in logged[B]] == [Stage.LOADER]


def test_the_last_stage_queued_is_the_clients_stage(recorder, inventory):
    recorder.record(A, Stage.KERNEL)
    recorder.record(A, Stage.INITRAMFS)
    recorder.flush()
    assert inventory.get(A).last_stage == Stage.INITRAMFS.value


def test_a_stage_seen_again_in_a_later_batch_is_logged_again(recorder, inventory):
    recorder.record(A, Stage.KERNEL)
    recorder.flush()
    recorder.record(A, Stage.KERNEL)  # a second boot's, a moment later
    recorder.flush()
    assert [stage for stage, _ in inventory.stage_log(A)[A]] == [Stage.KERNEL, Stage.KERNEL]


def test_a_stage_of_an_unregistered_mac_does_not_stop_the_batch(recorder, inventory):
    recorder.record("52:54:00:00:00:09", Stage.LOADER)
    recorder.record(A, Stage.LOADER)
    recorder.flush()
    assert inventory.get(A).last_stage == Stage.LOADER.value


def test_stop_writes_what_is_queued(config, inventory):
    add_client(config, inventory, A)
    pool = InventoryPool(lambda: open_inventory(config))
    recorder = StageRecorder(pool, pause=5)
    recorder.start()
    recorder.record(A, Stage.LOADER)
    recorder.stop()
    pool.stop()
    assert inventory.get(A).last_stage == Stage.LOADER.value
