"""What every part of ``netboot serve`` is, and the line that says they all listen.

A leaf: the concrete services import it, and only :mod:`netboot.serve.compose`
imports them.
"""

from __future__ import annotations

from typing import Protocol

from netboot.threads import Stoppable

SERVE_READY = "serving:"  # logged once every service listens; the lab and tests wait for it


class Service(Stoppable, Protocol):
    """A part of the server. ``start`` returns once it is listening; ``stop`` once it has let go.

    Its threads are started with :func:`netboot.threads.start_thread`, so that one dying
    stops ``netboot serve``.
    """

    def start(self) -> None: ...
