"""A VM boots from a root LUN that netboot itself provisioned: built-in image, clone, tgt adapter.

Everything on the target side is netboot's: `image build --builtin`, `client add`
cloning it and creating the target through the tgt backend (CHAP, mutual CHAP,
ACL, discovery CHAP). The guest is QEMU with the kernel and initrds given
directly (no PXE), so what is tested is that the target serves the root and the
built-in /sbin/init runs: it prints the marker, counts boots on its root and
powers off.
"""

# ruff: noqa: F811  (fixtures imported from direct_boot are requested by name)
from __future__ import annotations

from pathlib import Path

import pytest
from direct_boot import (  # noqa: F401  (fixtures)
    MARKER,
    base_image,
    boot_client,
    dhcp,
    guest_address,
    report_listener,
    tgtd,
    vlan,
    vlan_config,
)

from netboot.inventory.clients import Client
from netboot.inventory.store import Inventory
from netboot.lab.rootfs import boot_count
from netboot.provisioning.clients import add_client
from netboot.storage.images import build_builtin
from netboot.target.tgt import TgtBackend

MAC = "52:54:00:4e:42:07"
HOSTNAME = "nbtarget1"


@pytest.fixture(scope="module")
def tgt(vlan, tmp_path_factory) -> int:
    """tgtd in the VLAN's namespace; netboot drives it through its control port."""
    with tgtd(vlan, tmp_path_factory.mktemp("tgtd")) as control_port:
        yield control_port


@pytest.fixture(scope="module")
def config(vlan, tgt: int, tmp_path_factory):
    return vlan_config(vlan, tmp_path_factory.mktemp("state"), tgt_control_port=tgt)


@pytest.fixture(scope="module")
def client(config, vlan, tgt: int) -> Client:
    """Registered and provisioned by netboot: a clone of the built-in image and its target."""
    build_builtin(config)
    with Inventory(config.storage.database) as inventory:
        added = add_client(config, inventory, MAC, hostname=HOSTNAME, ip=guest_address(vlan),
                           image="builtin", size=48 << 20,
                           backend=TgtBackend(tgt, config.storage.state_dir))
    assert added.target.done, added.target
    return added.client


@pytest.fixture(scope="module")
def servers(vlan, tmp_path_factory):
    """DHCP for the guest and a listener for its reports."""
    work = tmp_path_factory.mktemp("dhcp")
    with dhcp(vlan, MAC, work), report_listener(vlan, work):
        yield


@pytest.fixture
def boot(vms, vlan, config, base_image: Path, tmp_path: Path):
    """``boot(client)``: one direct boot of the guest with netboot's kernel and initrds."""
    def run(client: Client):
        return boot_client(vms, vlan, config, base_image, client, tmp_path)
    return run


def test_guest_boots_the_builtin_image_from_its_provisioned_lun(client, servers, boot):
    result = boot(client)
    assert f"{MARKER} {HOSTNAME}" in result.log


def test_builtin_init_counts_boots_on_its_root(client, servers, boot):
    before = boot_count(Path(client.lun_path))
    result = boot(client)
    assert f"NETBOOT-BOOT-COUNT {before + 1}" in result.log
    assert boot_count(Path(client.lun_path)) == before + 1
