"""Debian's Chromium, headless, inside a test's network namespace, driven by Playwright.

`netboot serve` keeps its admin interface on the loopback of the namespace it runs in, so
the browser must run there too. Playwright talks to Chromium over a pipe (fds 3 and 4),
which `ip netns exec` passes on, so a two-line wrapper script is its executable.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from netboot.host import iproute

CHROMIUM = Path("/usr/bin/chromium")  # Debian package chromium
# Nothing a test did not ask for: no first-run tasks, no update or sync traffic, no GPU.
QUIET = ("--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps")


@contextmanager
def chromium_in(netns: str, work: Path) -> Iterator[Browser]:
    """A headless Chromium running in ``netns``; its wrapper script is written in ``work``."""
    wrapper = work / "chromium-in-netns"
    wrapper.write_text("#!/bin/sh\nexec " + shlex.join(iproute.in_netns(netns, [str(CHROMIUM)]))
                       + ' "$@"\n')
    wrapper.chmod(0o755)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=wrapper, args=list(QUIET))
        try:
            yield browser
        finally:
            browser.close()
