"""The DHCP engine as serve makes it (no socket)."""

from __future__ import annotations

from netboot.dhcp.service import DhcpEngine
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client

MAC = "52:54:00:12:34:56"
NOW = 1_800_000_000.0


def test_the_registered_clients_are_read_when_the_engine_is_made_not_at_the_first_request(
        make_config):
    config = make_config()
    with Inventory(config.storage.database) as inventory:
        add_client(config, inventory, MAC)
        engine = DhcpEngine(config, inventory, NOW, record_stage=lambda *_: None)
        assert engine.clients.holds(MAC)
