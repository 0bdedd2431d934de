"""Output for people (aligned tables) and for scripts (JSON)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import click


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; ``None`` shows as ``-``."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def fields_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """Two columns, name and value, for one record."""
    pairs = [(k, "-" if v is None else str(v)) for k, v in pairs]
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def when(stamp: float | None) -> str | None:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``."""
    if stamp is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
