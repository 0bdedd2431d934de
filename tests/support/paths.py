"""Where tests keep things: the download cache both test folders share, and test directories
another user may pass (pytest makes each of its directories 0700)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.support import REPO

# Downloads kept between runs (not in /tmp), shared by both test folders so a run fetches
# each once: kernel .debs, another architecture's packages, mmdebstrap tarballs.
# $NETBOOT_LAB_CACHE or lab-state/cache.
LAB_CACHE = Path(os.environ.get("NETBOOT_LAB_CACHE", REPO / "lab-state" / "cache"))


def make_reachable(*paths: Path) -> None:
    """Let any user pass (o+x, not list) each directory from the system's temporary
    directory down to each of ``paths``, so `netboot serve`'s network part, running as
    server.user, reaches the state a test keeps in tmp_path. Nothing outside it changes."""
    top = Path(tempfile.gettempdir()).resolve()
    for path in paths:
        path = path.resolve()
        for directory in (path, *path.parents):
            if directory == top or top not in directory.parents:
                break
            if directory.is_dir():
                directory.chmod(directory.stat().st_mode | 0o001)
