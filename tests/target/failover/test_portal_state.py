"""The portal's state file across transitions: held or not, and fenced once the portal went
to the peer, until the portal is prepared again (notify run without keepalived, on a
server whose actions touch nothing: no address and no tgtd to stop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netboot.config import Config
from netboot.configfile import parse_config
from netboot.target.failover import portal
from netboot.target.failover.decide import Action, VrrpState


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    text = f"""\
server:
  interface: nb-none
  address: 198.18.40.2
dhcp:
  subnet: 198.18.40.0/24
target:
  portal_address: 198.18.40.100
  tgt_control_port: 31999
  failover:
    enabled: true
    virtual_router_id: 40
    peer_storage_address: 198.19.254.3
storage:
  backend: rbd
  state_dir: {tmp_path / "state"}
"""
    done: list[Action] = []
    monkeypatch.setattr(portal, "_do", lambda _config, action: done.append(action))
    return parse_config(text, str(tmp_path / "netboot.yaml"))


def test_a_server_never_master_is_neither_holding_nor_fenced(config: Config) -> None:
    portal.notify(config, VrrpState.BACKUP)
    assert not portal.holding(config) and not portal.fenced(config)


def test_master_holds_the_portal(config: Config) -> None:
    assert portal.notify(config, VrrpState.MASTER) == (Action.FENCE_PEER, Action.TAKE_ADDRESS)
    assert portal.holding(config) and not portal.fenced(config)


def test_losing_the_portal_fences_this_server(config: Config) -> None:
    portal.notify(config, VrrpState.MASTER)
    portal.notify(config, VrrpState.BACKUP)
    assert not portal.holding(config) and portal.fenced(config)


def test_a_fenced_server_takes_nothing_back_as_master(config: Config) -> None:
    portal.notify(config, VrrpState.MASTER)
    portal.notify(config, VrrpState.FAULT)
    assert portal.notify(config, VrrpState.MASTER) == ()
    assert not portal.holding(config) and portal.fenced(config)
