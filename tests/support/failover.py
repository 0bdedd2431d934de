"""Two failover servers on one boot VLAN for wire and VM tests: their config (the floating
portal, RBD on the session's Ceph cluster) and the clean-up that lifts their fences."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

from netboot.config import Config
from netboot.configfile import load_config
from netboot.lab import ceph
from netboot.storage.rbdstore import unblocklist
from netboot.target.failover.fence import whole_host
from netboot.target.tgtd import forget_control_port, free_control_port
from tests.support.netlab import Lab

SUBNET = "198.18.40.0/24"
PORTAL = "198.18.40.100"
AUTHORITY = "iqn.2026-11.org.example"


def server_config(path: Path, interface: str, address: str, cluster: ceph.Cluster, *,
                  priority: int, router_id: int, peer: IPv4Address, server: str = "",
                  dhcp: str = "", extra: str = "") -> Config:
    """A failover server's config written to ``path``; ``server``, ``dhcp``: more lines of
    those sections, ``extra``: more sections."""
    path.write_text(f"""\
server:
  interface: {interface}
  address: {address}
{server}dhcp:
  subnet: {SUBNET}
{dhcp}target:
  portal_address: {PORTAL}
  tgt_control_port: {free_control_port()}
  iqn_authority: {AUTHORITY}
  failover:
    enabled: true
    virtual_router_id: {router_id}
    priority: {priority}
    peer_storage_address: {peer}
storage:
  backend: rbd
  state_dir: {path.parent / (path.stem + "-state")}
  rbd:
    pool: {cluster.pool}
    ceph_conf: {cluster.conf}
    client_id: {cluster.client_id}
{extra}""")
    return load_config(path)


def status(config: Config) -> dict:
    """``netboot status --json`` as a server of ``config`` answers it."""
    done = subprocess.run([sys.executable, "-m", "netboot", "--config", str(config.source),
                           "status", "--json"], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout)


def server_states(config: Config) -> dict[str, tuple[str, str]]:
    """Each server's (state, portal role) in ``status``."""
    return {s["name"]: (s["state"], s["portal"]) for s in status(config)["servers"]}


def clean_up(lab: Lab, configs: list[Config], storage: dict[str, IPv4Address]) -> None:
    """Lift the fences (while the lab, and so the host's way in, is still up), then close
    the lab and forget its tgtds' control ports."""
    if configs:
        for ns_address in storage.values():
            unblocklist(configs[0].storage.rbd, whole_host(ns_address))
    lab.close()
    for config in configs:
        forget_control_port(config.target.tgt_control_port)
