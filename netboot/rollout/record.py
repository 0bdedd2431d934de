"""The last roll-out, kept so ``rollout --undo`` knows whom it moved and from what.

One JSON record in the inventory's ``last_rollout`` row, replaced whole in one
transaction, so every server of a shared inventory (PostgreSQL) sees the same last
roll-out and any of them can undo it. The runner writes it before it touches each
client (write-ahead), so a roll-out killed at any moment leaves a record of every client
it may have moved, with the version each came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from netboot.errors import NotFound, ValidationError
from netboot.inventory.store import Inventory


@dataclass(frozen=True)
class Move:
    """One client of a roll-out: the version it had, and how its move went."""

    mac: str
    hostname: str
    previous_image: str | None
    result: str = "pending"  # pending, then "up", or what stopped it ("timed out after ...")


@dataclass(frozen=True)
class Rollout:
    """A roll-out to ``version``, and each client it moved, in the order it moved them."""

    version: str
    started: float
    moves: tuple[Move, ...] = ()
    stopped: str | None = None  # why it stopped early; None while running or when complete
    undone: bool = False

    def with_move(self, move: Move) -> Rollout:
        """This roll-out with ``move`` added, or replacing the move of the same client."""
        kept = tuple(m for m in self.moves if m.mac != move.mac)
        order = [m.mac for m in self.moves]
        moves = sorted((*kept, move), key=lambda m: order.index(m.mac) if m.mac in order
                       else len(order))
        return replace(self, moves=tuple(moves))


def save(inventory: Inventory, rollout: Rollout) -> None:
    record = json.dumps(asdict(rollout), indent=2)
    with inventory.transaction() as db:
        db.execute("INSERT INTO last_rollout (id, record) VALUES (1, ?) "
                   "ON CONFLICT (id) DO UPDATE SET record = excluded.record", (record,))


def load(inventory: Inventory) -> Rollout:
    """The last roll-out; NotFound when there was none."""
    rows = inventory.query("SELECT record FROM last_rollout WHERE id = 1")
    if not rows:
        raise NotFound("no roll-out was made with this inventory yet (nothing to undo)")
    try:
        data = json.loads(str(rows[0]["record"]))
        return Rollout(**{**data, "moves": tuple(Move(**m) for m in data["moves"])})
    except (ValueError, KeyError, TypeError) as err:
        raise ValidationError(f"the inventory's last roll-out is not a roll-out record "
                              f"({err})") from None
