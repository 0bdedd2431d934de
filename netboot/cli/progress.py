"""A progress bar for long copies, shown only when there is enough to wait for."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from netboot.storage.clone import Progress

LARGE = 64 << 20  # copies of less data than this finish before a bar would help


@contextmanager
def copy_progress(label: str) -> Iterator[Progress]:
    """A ``(done, total)`` callback that draws a bar on stderr for copies of LARGE or more."""
    state: dict[str, Any] = {"bar": None, "done": 0}

    def update(done: int, total: int) -> None:
        if state["bar"] is None:
            if total < LARGE:
                return
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr,
                                             show_eta=True, show_percent=True)
            state["bar"].__enter__()
        state["bar"].update(done - state["done"])
        state["done"] = done

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
