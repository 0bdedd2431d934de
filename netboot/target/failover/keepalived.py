"""keepalived for the floating portal: its files rendered from templates, the daemon run.

keepalived runs in the foreground (``-n``), VRRP only (``-P``), logging to its output
(``-l -D``), with pid files of its own (``-p``, ``-r``) so several can run on one host
(one per namespace in the tests). It is stopped by its pid: SIGTERM makes it send a
priority-0 advert, so the peer takes over at once instead of after ~3 adverts.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import netboot
from netboot.config import Config
from netboot.host.files import atomic_write
from netboot.templates import render

INSTANCE = "netboot_portal"


@dataclass(frozen=True)
class Files:
    """Where one server's failover keeps its files (``<state_dir>/failover``)."""

    directory: Path

    @property
    def conf(self) -> Path:
        return self.directory / "keepalived.conf"

    @property
    def notify(self) -> Path:
        return self.directory / "notify.sh"

    @property
    def notify_log(self) -> Path:
        return self.directory / "notify.log"

    @property
    def pid(self) -> Path:
        return self.directory / "keepalived.pid"

    @property
    def vrrp_pid(self) -> Path:
        return self.directory / "vrrp.pid"

    @property
    def state(self) -> Path:
        """Whether this server holds the portal, and whether it was fenced since it was
        prepared (:mod:`netboot.target.failover.portal`)."""
        return self.directory / "portal.json"

    @property
    def lock(self) -> Path:
        return self.directory / "portal.lock"


def files(config: Config) -> Files:
    return Files(config.storage.state_dir / "failover")


def keepalived_conf(config: Config, notify: Path) -> str:
    """keepalived.conf for this server (both servers differ only in router_id and priority)."""
    failover = config.target.failover
    return render("keepalived.conf.j2", router_id=f"netboot_{config.server.address}",
                  instance=INSTANCE, interface=config.vrrp_interface,
                  virtual_router_id=failover.virtual_router_id, priority=failover.priority,
                  advert_int=failover.advert_int, portal=config.portal[0], notify=notify)


def notify_script(config: Config, log: Path) -> str:
    """The script keepalived runs on a transition: ``netboot target portal notify``, with
    this interpreter and this netboot (keepalived gives scripts no environment of ours)."""
    assert config.source is not None, "the notify script names the config file it came from"
    return render("keepalived-notify.sh.j2",
                  pythonpath=shlex.quote(str(Path(netboot.__file__).resolve().parent.parent)),
                  python=shlex.quote(sys.executable),
                  config=shlex.quote(str(config.source.resolve())),
                  log=shlex.quote(str(log)))


def write_files(config: Config) -> Files:
    """Write keepalived.conf and the notify script (root's only: keepalived refuses a
    script others could change, and runs it as root)."""
    where = files(config)
    where.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(where.notify, notify_script(config, where.notify_log).encode(), 0o700)
    atomic_write(where.conf, keepalived_conf(config, where.notify).encode(), 0o600)
    return where


def argv(where: Files) -> list[str]:
    """keepalived in the foreground, VRRP only, logging to its output, pid files of ours."""
    return ["keepalived", "-n", "-l", "-D", "-P", "-f", str(where.conf),
            "-p", str(where.pid), "-r", str(where.vrrp_pid)]


def pids(where: Files) -> list[int]:
    """keepalived's parent and VRRP child, as far as their pid files say."""
    found = []
    for path in (where.pid, where.vrrp_pid):
        try:
            found.append(int(path.read_text().split()[0]))
        except (FileNotFoundError, ValueError, IndexError):
            continue
    return [pid for pid in found if os.path.exists(f"/proc/{pid}")]
