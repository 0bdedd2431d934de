"""debian/ agrees with pyproject.toml: the package's version, and the pins of the wheels it
takes from PyPI."""

from __future__ import annotations

import subprocess
import tomllib

from tests.support import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_the_changelog_carries_the_projects_version():
    version = subprocess.run(["dpkg-parsechangelog", "-l", REPO / "debian" / "changelog",
                              "-S", "Version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == PROJECT["version"]


def test_the_wheels_from_pypi_are_pinned_as_pyproject_pins_them():
    lines = (REPO / "debian" / "pypi-requirements.txt").read_text().splitlines()
    pins = {line.split()[0] for line in lines if line and not line.startswith("#")}
    assert pins and pins <= set(PROJECT["dependencies"])
