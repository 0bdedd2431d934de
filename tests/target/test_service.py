"""The target service of `netboot serve`: starts tgtd, follows the inventory, survives restarts."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from functools import partial

import pytest

from netboot.config import Config
from netboot.inventory.stages import Stage
from netboot.inventory.store import open_inventory
from netboot.provisioning.clients import add_client
from netboot.target.service import TargetService
from netboot.target.tgtd import forget_control_port, start_tgtd, stop_tgtd, tgtd_pid
from tests.conftest import needs_root
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    builtin_image,
    read_capacity,
    target_config,
    tgtd_endpoint,
)
from tests.support.waiting import eventually

pytestmark = [needs_root, pytest.mark.root]
MAC = "52:54:00:00:00:31"


@pytest.fixture
def service(target_config: Config, tgtd_endpoint: Tgtd) -> Iterator[TargetService]:
    service = TargetService(target_config, partial(open_inventory, target_config))
    try:
        yield service
    finally:
        service.stop()
        stop_tgtd(tgtd_endpoint.control_port)
        forget_control_port(tgtd_endpoint.control_port)


@pytest.fixture
def registered(target_config: Config, builtin_image):
    """A client in the inventory whose target nobody has made yet (no backend at add time)."""
    with open_inventory(target_config) as inventory:
        return add_client(target_config, inventory, MAC, image="builtin").client


def logs_in(tgtd: Tgtd, client) -> bool:
    return read_capacity(tgtd, client.initiator_iqn, client.chap_user, client.chap_secret,
                         client.target_iqn).returncode == 0


def test_start_launches_tgtd_and_reconciles(service: TargetService, tgtd_endpoint: Tgtd,
                                            registered) -> None:
    assert tgtd_pid(tgtd_endpoint.control_port) is None
    service.start()
    assert tgtd_pid(tgtd_endpoint.control_port) is not None
    assert logs_in(tgtd_endpoint, registered)


def test_stop_leaves_tgtd_serving_its_clients(service: TargetService, tgtd_endpoint: Tgtd,
                                              registered) -> None:
    service.start()
    service.stop()
    assert logs_in(tgtd_endpoint, registered)


def test_killed_tgtd_is_started_again_with_every_target(service: TargetService,
                                                       tgtd_endpoint: Tgtd, registered) -> None:
    service.start()
    os.kill(tgtd_pid(tgtd_endpoint.control_port), signal.SIGKILL)
    assert eventually(lambda: logs_in(tgtd_endpoint, registered))


def test_a_gone_tgtd_is_not_started_again_while_it_may_not(target_config: Config,
                                                          tgtd_endpoint: Tgtd,
                                                          registered) -> None:
    """As on a server fenced when the floating portal went to its peer."""
    allowed = [True]
    service = TargetService(target_config, partial(open_inventory, target_config), watch=0.1,
                            may_start=lambda: allowed[0])
    try:
        service.start()
        allowed[0] = False
        stop_tgtd(tgtd_endpoint.control_port)
        time.sleep(1)  # ten rounds of the watch
        assert tgtd_pid(tgtd_endpoint.control_port) is None
    finally:
        service.stop()
        stop_tgtd(tgtd_endpoint.control_port)
        forget_control_port(tgtd_endpoint.control_port)


def test_tgtd_restarted_by_someone_else_gets_every_target_back(
        service: TargetService, tgtd_endpoint: Tgtd, registered) -> None:
    service.start()
    stop_tgtd(tgtd_endpoint.control_port)
    start_tgtd(tgtd_endpoint.control_port, tgtd_endpoint.portal)
    assert eventually(lambda: logs_in(tgtd_endpoint, registered))


BOTH_STORES = pytest.mark.parametrize("inventory_store", ["sqlite", "postgresql"],
                                      indirect=True)


@BOTH_STORES
def test_inventory_change_is_applied_without_a_restart(service: TargetService,
                                                      tgtd_endpoint: Tgtd,
                                                      target_config: Config,
                                                      builtin_image) -> None:
    service.start()
    with open_inventory(target_config) as inventory:
        client = add_client(target_config, inventory, MAC, image="builtin").client
    assert eventually(lambda: logs_in(tgtd_endpoint, client))


@BOTH_STORES
def test_quiet_inventory_and_tgtd_cause_no_reconcile(service: TargetService,
                                                    registered) -> None:
    service.start()
    time.sleep(3 * service.watch)
    assert service.reconciles == 1


def test_stages_and_renewed_secrets_alone_cause_no_reconcile(service: TargetService,
                                                            target_config: Config,
                                                            registered) -> None:
    """A boot storm's writes: the secrets are the windows' preparation's to renew."""
    service.start()
    with open_inventory(target_config) as inventory:
        for stage in (Stage.DHCP, Stage.LOADER):
            inventory.record_stage(registered.mac, stage)
            time.sleep(service.watch)
        inventory.update(registered.mac, chap_secret="Renewed123456789")
        time.sleep(3 * service.watch)
    assert service.reconciles == 1


def test_a_client_logged_in_to_its_target_gets_stage_login(service: TargetService,
                                                           tgtd_endpoint: Tgtd,
                                                           target_config: Config,
                                                           registered) -> None:
    """As under sanboot: DHCP and the iPXE script were seen, then iPXE logs in, nothing reports."""
    with open_inventory(target_config) as inventory:
        inventory.record_stage(MAC, Stage.LOADER)
    service.start()
    url = (f"iscsi://{registered.chap_user}%{registered.chap_secret}@{tgtd_endpoint.url}/"
           f"{registered.target_iqn}/1")
    reader = subprocess.Popen(["iscsi-perf", "-i", registered.initiator_iqn, "-t", "4", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with open_inventory(target_config) as inventory:
            assert eventually(lambda: inventory.get(MAC).last_stage == "login", 4.0), \
                reader.stderr.read() if reader.poll() is not None else "still connected"
    finally:
        reader.kill()
        reader.wait()
