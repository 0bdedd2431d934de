"""The last roll-out, kept so ``rollout --undo`` knows whom it moved and from what.

One JSON file, ``<state_dir>/rollouts/last.json``, replaced whole (written to a
temporary file and renamed). The runner writes it before it touches each client
(write-ahead), so a roll-out killed at any moment leaves a record of every client it
may have moved, with the version each came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from netboot.config import Config
from netboot.errors import NotFound, ValidationError
from netboot.host.files import atomic_write

RECORD = Path("rollouts") / "last.json"


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


def path(config: Config) -> Path:
    return config.storage.state_dir / RECORD


def save(config: Config, rollout: Rollout) -> None:
    target = path(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, (json.dumps(asdict(rollout), indent=2) + "\n").encode(), 0o644)


def load(config: Config) -> Rollout:
    """The last roll-out; NotFound when there was none."""
    target = path(config)
    try:
        data = json.loads(target.read_text())
        return Rollout(**{**data, "moves": tuple(Move(**m) for m in data["moves"])})
    except FileNotFoundError:
        raise NotFound("no roll-out was made here yet (nothing to undo)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ValidationError(f"{target}: not a roll-out record ({err})") from None

