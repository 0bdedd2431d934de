"""Running a roll-out: batch after batch, each client powered off through its BMC, given a
root of the new version (``client reimage``), booted from the network, and watched
through the inventory until it reports os-up on that version. The first batch with a
client that fails, times out or comes up on another version stops the roll-out: the
clients after it are not touched, and the record says who stopped it and at which stage.

A batch is powered off at once, softly: each OS is asked to shut down (ACPI through the
BMC) and the power cut only if it has not within the timeout
(:func:`netboot.power.control.power_off`).

``undo`` does the same backwards for the last roll-out: every client it moved is
powered off, put back on the root it kept (``client reimage --undo``) and booted.
An overlay client gets no new root either way: its lower layer is set to the new
version (back to the one it had, for undo) and its upper layer, with what it wrote, stays.
Decisions come from :mod:`netboot.rollout.plan`; this module only acts and waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from netboot.config import Config
from netboot.errors import Conflict
from netboot.inventory.bmcs import get_bmc
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.store import Inventory
from netboot.power.bmc import PowerAction
from netboot.power.control import power, power_off
from netboot.provisioning.overlay import set_lower
from netboot.provisioning.reimage import purge_previous, reimage_client, undo_reimage
from netboot.rollout.plan import Outcome, Verdict, batches, judge
from netboot.rollout.record import Move, Rollout, load, save
from netboot.storage.images import get_image
from netboot.target.backend import TargetBackend

POLL = 1.0  # seconds between two looks at the batch's stages
Say = Callable[[str], None]


def _boot(inventory: Inventory, group: Sequence[Client], versions: dict[str, str | None],
          timeout: float, say: Say) -> dict[str, Verdict]:
    """Boot every client of ``group`` from the network and wait until each is up on its
    version in ``versions``, or one is not going to be; each one's verdict (clients still
    booting when another failed are left to finish, as they are)."""
    since = time.time()
    for client in group:
        power(get_bmc(inventory, client.mac), PowerAction.CYCLE)
    deadline = since + timeout
    shown: dict[str, str] = {}
    while True:
        now = time.time()
        logs = {c.mac: inventory.stage_log(c.mac).get(c.mac, []) for c in group}
        verdicts = {c.mac: judge(logs[c.mac], inventory.get(c.mac),
                                 versions[c.mac] or "", since, now, deadline)
                    for c in group}
        for client in group:
            line = str(verdicts[client.mac])
            if shown.get(client.mac) != line:
                say(f"{client.hostname}: {line} ({now - since:.0f} s)")
                shown[client.mac] = line
        outcomes = {v.outcome for v in verdicts.values()}
        if outcomes == {Outcome.UP} or outcomes - {Outcome.UP, Outcome.WAITING}:
            return verdicts
        time.sleep(POLL)


def _shut_down(inventory: Inventory, group: Sequence[Client], say: Say) -> None:
    """Power every client of ``group`` off through its BMC, all at once: each OS is asked
    to shut down, and the power cut if it has not within the soft timeout."""
    took = power_off([get_bmc(inventory, c.mac) for c in group])
    for client, done in zip(group, took, strict=True):
        say(f"{client.hostname}: {done}")


def _result(verdict: Verdict) -> str:
    return "up" if verdict.outcome is Outcome.UP else str(verdict)


def roll_out(config: Config, inventory: Inventory, version: str, clients: Sequence[Client], *,
             batch: int, canary: int, timeout: float, backend: TargetBackend | None,
             say: Say) -> Rollout:
    """Move ``clients`` to image ``version`` (``NAME`` or ``NAME@N``); the record."""
    target = get_image(config, version).ref
    groups = batches(clients, batch, canary)
    for client in clients:
        get_bmc(inventory, client.mac)  # every BMC known before anything is touched
    rollout = Rollout(target, time.time())
    save(inventory, rollout)
    for number, group in enumerate(groups, 1):
        say(f"batch {number}/{len(groups)}: {', '.join(c.hostname for c in group)}")
        began = time.monotonic()
        for client in group:
            rollout = rollout.with_move(Move(client.mac, client.hostname,
                                             inventory.get(client.mac).image))
        save(inventory, rollout)  # before the batch is touched: undo must know it
        _shut_down(inventory, group, say)
        for client in group:
            current = inventory.get(client.mac)
            if current.image != target and current.boot_method is BootMethod.OVERLAY:
                # no new root: the lower layer changes, the client's upper stays
                set_lower(config, inventory, client.mac, target, backend=backend,
                          powered_off=True)
            elif current.image != target:
                if current.previous_lun_path is not None:
                    purge_previous(config, inventory, client.mac)  # an older roll-out's
                reimage_client(config, inventory, client.mac, target, backend=backend,
                               powered_off=True)
            say(f"{client.hostname}: {current.image} -> {target}, booting")
        verdicts = _boot(inventory, group, {c.mac: target for c in group}, timeout, say)
        for client in group:
            rollout = rollout.with_move(replace(
                next(m for m in rollout.moves if m.mac == client.mac),
                result=_result(verdicts[client.mac])))
        bad = [c for c in group if verdicts[c.mac].outcome is not Outcome.UP]
        if bad:
            rollout = replace(rollout, stopped=f"batch {number}: {bad[0].hostname} "
                                                f"{verdicts[bad[0].mac]}")
            save(inventory, rollout)
            return rollout
        save(inventory, rollout)
        say(f"batch {number}/{len(groups)} up in {time.monotonic() - began:.1f} s")
    return rollout


def undo(config: Config, inventory: Inventory, *, timeout: float,
         backend: TargetBackend | None, say: Say) -> Rollout:
    """Put every client the last roll-out moved back on the version it had."""
    rollout = load(inventory)
    if rollout.undone:
        raise Conflict(f"the last roll-out (to {rollout.version}) was undone already")
    moved = [inventory.get(m.mac) for m in rollout.moves]
    before = {m.mac: m.previous_image for m in rollout.moves}
    _shut_down(inventory, moved, say)
    for client in moved:
        previous = before[client.mac]
        if client.boot_method is BootMethod.OVERLAY:
            if client.image == rollout.version and previous is not None:
                set_lower(config, inventory, client.mac, previous, backend=backend,
                          powered_off=True)
        elif client.previous_lun_path is not None and client.image == rollout.version:
            undo_reimage(config, inventory, client.mac, backend=backend, powered_off=True)
        say(f"{client.hostname}: back to {inventory.get(client.mac).image}, booting")
    versions = {c.mac: inventory.get(c.mac).image for c in moved}
    verdicts = _boot(inventory, moved, versions, timeout, say) if moved else {}
    bad = [c for c in moved if verdicts[c.mac].outcome is not Outcome.UP]
    rollout = replace(rollout, undone=True, moves=tuple(
        replace(m, result=f"undone: {_result(verdicts[m.mac])}") for m in rollout.moves),
        stopped=f"undo: {bad[0].hostname} {verdicts[bad[0].mac]}" if bad else None)
    save(inventory, rollout)
    return rollout
