"""Preparing a boot window on a real tgtd: sessions closed, CHAP renewed, old secret refused."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import replace
from functools import partial

import pytest

from netboot.config import Config
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.luns import LOWER_LUN
from netboot.inventory.servers import PortalRole, ServerRecord
from netboot.inventory.store import Inventory, open_inventory
from netboot.provisioning.clients import add_client
from netboot.provisioning.windows import WindowPreparer, prepare_windows
from netboot.target.reconcile import reconcile
from netboot.target.tgt import TgtBackend
from netboot.target.tgtd import forget_control_port, free_control_port, start_tgtd, stop_tgtd
from tests.conftest import needs_root
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    backend,
    builtin_image,
    free_port,
    inventory,
    read_capacity,
    target_config,
    tgtd,
    tgtd_endpoint,
)
from tests.support.waiting import eventually

pytestmark = [needs_root, pytest.mark.root]
MAC = "52:54:00:00:00:41"


@pytest.fixture
def client(target_config: Config, inventory: Inventory, backend: TgtBackend,
           builtin_image) -> Client:
    return add_client(target_config, inventory, MAC, image="builtin", size=32 << 20,
                      backend=backend).client


def logs_in(tgtd: Tgtd, client: Client) -> subprocess.CompletedProcess[str]:
    return read_capacity(tgtd, client.initiator_iqn, client.chap_user, client.chap_secret,
                         client.target_iqn)


def test_a_prepared_window_renews_the_secrets_and_the_target_refuses_the_old_ones(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        client: Client):
    window, _ = inventory.open_window(MAC, time.time(), 120, ready=False)
    prepare_windows(target_config, inventory, backend, [window])
    renewed = inventory.get(MAC)
    assert renewed.chap_secret != client.chap_secret
    assert renewed.mutual_secret != client.mutual_secret
    refused = logs_in(tgtd, client)
    assert refused.returncode != 0 and "Authentication failure" in refused.stderr
    assert logs_in(tgtd, renewed).returncode == 0


def test_a_prepared_window_closes_a_live_session_and_warns(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        client: Client, caplog):
    url = f"iscsi://{client.chap_user}%{client.chap_secret}@{tgtd.url}/{client.target_iqn}/1"
    reader = subprocess.Popen(["iscsi-perf", "-i", client.initiator_iqn, "-t", "60", "-x", "3",
                               url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert eventually(lambda: any(t.logins for t in backend.targets()), 10)
        window, _ = inventory.open_window(MAC, time.time(), 120, ready=False)
        with caplog.at_level(logging.WARNING):
            prepare_windows(target_config, inventory, backend, [window])
        assert any("session(s) open" in r.getMessage() and getattr(r, "mac", None) == MAC
                   for r in caplog.records)
        # the thief's initiator tries again with the secret it had, and is refused
        assert reader.wait(timeout=30) != 0
        assert not any(t.logins for t in backend.targets())
    finally:
        reader.kill()
        reader.wait()


def test_without_rotation_the_secrets_stay_and_the_session_is_still_closed(
        make_config, target_config: Config, inventory: Inventory, backend: TgtBackend,
        tgtd: Tgtd, client: Client):
    address, port = target_config.portal
    config = make_config(f"""
        target:
          portal_address: {address}
          portal_port: {port}
          tgt_control_port: {target_config.target.tgt_control_port}
          rotate_chap: never
        """)
    window, _ = inventory.open_window(MAC, time.time(), 120, ready=False)
    prepare_windows(config, inventory, backend, [window])
    assert inventory.get(MAC).chap_secret == client.chap_secret
    assert logs_in(tgtd, client).returncode == 0


@pytest.mark.parametrize("inventory_store", ["sqlite", "postgresql"], indirect=True)
def test_the_preparer_makes_windows_ready_left_from_a_stopped_serve(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        client: Client):
    window, _ = inventory.open_window(MAC, time.time(), 120, ready=False)
    preparer = WindowPreparer(target_config, partial(open_inventory, target_config), backend)
    preparer.start()
    try:
        assert eventually(lambda: inventory.current_window(MAC).ready, 15)
    finally:
        preparer.stop()
    assert window.boot_id == inventory.current_window(MAC).boot_id
    assert inventory.get(MAC).chap_secret != client.chap_secret


def test_with_two_servers_a_window_is_ready_once_both_tgtds_took_the_new_secret(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        client: Client):
    """Server a holds the portal, b stands by with a tgtd of its own: the window waits for
    b too, the secrets are renewed once, and either tgtd takes only the new ones."""
    address = tgtd.portal[0]
    other = Tgtd(free_control_port(), (address, free_port(str(address))))
    start_tgtd(other.control_port, other.portal)
    preparers: list[WindowPreparer] = []
    try:
        other_backend = TgtBackend(other.control_port, target_config.storage.state_dir)
        reconcile(target_config, inventory, other_backend)
        now = time.time()
        configs = {}
        for name, role in (("a", PortalRole.HOLDER), ("b", PortalRole.STANDBY)):
            configs[name] = replace(target_config,
                                    server=replace(target_config.server, name=name))
            start, end = target_config.dhcp.dynamic_range
            inventory.announce_server(ServerRecord(name, target_config.server.address, start,
                                                   end, role, now, now))
        window, _ = inventory.open_window(MAC, now, 120, ready=False)
        for name, server_backend in (("a", backend), ("b", other_backend)):
            preparers.append(WindowPreparer(configs[name], partial(open_inventory,
                                                                   configs[name]),
                                            server_backend, poll=0.05))
            preparers[-1].start()
            if name == "a":
                assert eventually(lambda: inventory.window_preparers(window.boot_id) == {"a"})
                time.sleep(0.5)
                assert not inventory.current_window(MAC).ready  # b has not prepared it
        assert eventually(lambda: inventory.current_window(MAC).ready, 10)
        renewed = inventory.get(MAC)
        assert renewed.chap_secret != client.chap_secret
        for server in (tgtd, other):
            assert logs_in(server, renewed).returncode == 0
            assert logs_in(server, client).returncode != 0
    finally:
        for preparer in preparers:
            preparer.stop()
        stop_tgtd(other.control_port)
        forget_control_port(other.control_port)


def test_windows_prepared_together_each_get_their_new_secret(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        client: Client):
    other = add_client(target_config, inventory, "52:54:00:00:00:42", image="builtin",
                       size=32 << 20, backend=backend).client
    windows = [inventory.open_window(mac, time.time(), 120, ready=False)[0]
               for mac in (MAC, other.mac)]
    prepare_windows(target_config, inventory, backend, windows)
    for old in (client, other):
        renewed = inventory.get(old.mac)
        assert logs_in(tgtd, old).returncode != 0
        assert logs_in(tgtd, renewed).returncode == 0


def test_an_overlay_clients_window_keeps_its_read_only_lower_lun(
        target_config: Config, inventory: Inventory, backend: TgtBackend, tgtd: Tgtd,
        builtin_image):
    overlay = add_client(target_config, inventory, "52:54:00:00:00:43", image="builtin",
                         boot_method=BootMethod.OVERLAY, overlay_size=16 << 20,
                         backend=backend).client
    window, _ = inventory.open_window(overlay.mac, time.time(), 120, ready=False)
    prepare_windows(target_config, inventory, backend, [window])
    target, = (t for t in backend.targets() if t.iqn == overlay.target_iqn)
    assert [(lun.number, lun.readonly) for lun in target.luns] == [(1, False),
                                                                    (LOWER_LUN, True)]
