"""Shared fixtures: configs in tmp_path, and the root check for tests that need it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.configfile import parse_config
from netboot.inventory.clients import Client
from netboot.target.tgtd import free_control_port

# The session's shared Ceph cluster (ceph_cluster, ceph_attach): one plugin for both test
# folders, so a run of both makes one cluster; and PostgreSQL (postgres_server, postgres_url).
pytest_plugins = ("tests.support.ceph", "tests.support.postgres")

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT,
    reason="needs root: creates network namespaces, starts tgtd or uses loop devices "
    "(CI runs as root)",
)

@pytest.fixture(autouse=True)
def netboot_logger_restored():
    """Put the ``netboot`` logger back as it was: a CLI run in-process (click's runner) sets
    it up for stderr and stops it propagating, which would leak into later tests' caplog."""
    logger = logging.getLogger("netboot")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


# One registered machine with fixed secrets, for golden renderings of its files.
SAMPLE_CLIENT = Client(
    mac="52:54:00:12:34:56", hostname="web1", ip=IPv4Address("198.18.0.10"), image="builtin",
    lun_path=None, lun_size=1 << 30,
    initiator_iqn="iqn.2026-11.org.example:initiator:web1",
    target_iqn="iqn.2026-11.org.example:target:web1", chap_user="web1",
    chap_secret="Secret0123456789", mutual_secret="Mutual0123456789", created=1_700_000_000,
)

BASE_CONFIG = """\
server:
  interface: nb0
  address: 198.18.0.1
  tftp_root: {tftp_root}
dhcp:
  subnet: 198.18.0.0/24
storage:
  state_dir: {state_dir}
"""


@pytest.fixture
def config_text(tmp_path: Path) -> str:
    """A minimal valid config whose paths are all inside tmp_path."""
    return BASE_CONFIG.format(tftp_root=tmp_path / "tftproot", state_dir=tmp_path / "state")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a Config from the minimal one plus extra YAML (written to tmp_path/netboot.yaml)."""

    def make(extra: str = "", base: str | None = None) -> Config:
        text = (base or BASE_CONFIG).format(
            tftp_root=tmp_path / "tftproot", state_dir=tmp_path / "state"
        ) + textwrap.dedent(extra)
        path = tmp_path / "netboot.yaml"
        path.write_text(text)
        return parse_config(text, str(path))

    return make


@pytest.fixture
def run(tmp_path):
    config = tmp_path / "netboot.yaml"

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "netboot", "--config", str(config), *args],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == expect, (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        return proc

    run.config = config
    return run


@pytest.fixture
def initialised(run, tmp_path):
    run("init", "--interface", "nbtest0", "--subnet", "198.18.0.0/24",
        "--state-dir", str(tmp_path / "state"))
    # a control port no tgtd uses: these commands must never touch another tgtd (port 0)
    port = free_control_port()
    run.config.write_text(run.config.read_text().replace(
        "target:\n", f"target:\n  tgt_control_port: {port}\n", 1))
    return run
