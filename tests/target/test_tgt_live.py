"""Per-client targets on a real tgtd, checked with real initiators (libiscsi, QEMU)."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from netboot.config import Config
from netboot.inventory.clients import BootMethod
from netboot.inventory.luns import LOWER_LUN, ROOT_LUN, LunOwner, OwnerKind
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client, remove_client
from netboot.provisioning.luns import add_lun
from netboot.storage.images import Image
from netboot.target.model import Lun
from netboot.target.reconcile import reconcile
from netboot.target.tgt import TgtBackend
from tests.conftest import needs_root
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    backend,
    builtin_image,
    discover,
    inventory,
    iscsi,
    loop_device,
    qemu_io,
    read_capacity,
    target_config,
    tgtadm,
    tgtd,
    tgtd_endpoint,
)
from tests.support.waiting import eventually

pytestmark = [needs_root, pytest.mark.root]

MAC1 = "52:54:00:12:34:01"
MAC2 = "52:54:00:12:34:02"
MAC3 = "52:54:00:12:34:03"


@pytest.fixture
def two_clients(target_config: Config, inventory: Inventory, backend: TgtBackend,
                builtin_image: Image):
    one = add_client(target_config, inventory, MAC1, image="builtin", size=64 << 20,
                     backend=backend).client
    two = add_client(target_config, inventory, MAC2, image="builtin", size=48 << 20,
                     backend=backend).client
    return one, two


def test_right_chap_logs_in_and_sees_root_lun_capacity(tgtd: Tgtd, two_clients) -> None:
    one, _ = two_clients
    done = read_capacity(tgtd, one.initiator_iqn, one.chap_user, one.chap_secret,
                         one.target_iqn)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == 64 << 20


def test_root_lun_holds_the_ext4_superblock_of_its_clone(tgtd: Tgtd, two_clients) -> None:
    one, _ = two_clients
    done = qemu_io(tgtd, one, "read -v 1080 2")
    assert done.returncode == 0, done.stderr
    assert "53 ef" in done.stdout


def test_mutual_chap_verifies_the_target(tgtd: Tgtd, two_clients) -> None:
    one, _ = two_clients
    url = (f"iscsi://{one.chap_user}%{one.chap_secret}@{tgtd.url}/{one.target_iqn}/1"
           f"?target_user={one.mutual_user}&target_password={one.mutual_secret}")
    done = iscsi(["iscsi-readcapacity16", "-s", "-i", one.initiator_iqn, url])
    assert done.returncode == 0, done.stderr


def test_wrong_secret_is_refused(tgtd: Tgtd, two_clients) -> None:
    one, _ = two_clients
    done = read_capacity(tgtd, one.initiator_iqn, one.chap_user, "X" * 16, one.target_iqn)
    assert done.returncode != 0
    assert "Authentication failure" in done.stderr


def test_no_chap_is_refused(tgtd: Tgtd, two_clients) -> None:
    one, _ = two_clients
    done = read_capacity(tgtd, one.initiator_iqn, None, None, one.target_iqn)
    assert done.returncode != 0


def test_other_clients_initiator_is_refused_with_its_own_secret(tgtd: Tgtd, two_clients) -> None:
    one, two = two_clients
    done = read_capacity(tgtd, two.initiator_iqn, two.chap_user, two.chap_secret, one.target_iqn)
    assert done.returncode != 0
    assert "Target not found" in done.stderr


def test_discovery_lists_only_the_clients_own_target(tgtd: Tgtd, two_clients) -> None:
    one, two = two_clients
    done = discover(tgtd, one.initiator_iqn, one.chap_user, one.chap_secret)
    assert done.returncode == 0, done.stderr
    assert one.target_iqn in done.stdout
    assert two.target_iqn not in done.stdout


def test_discovery_with_wrong_chap_is_refused(tgtd: Tgtd, two_clients) -> None:
    one, _ = two_clients
    done = discover(tgtd, one.initiator_iqn, one.chap_user, "Y" * 16)
    assert done.returncode != 0
    assert "Authentication failure" in done.stderr


def test_discovery_without_chap_is_refused(tgtd: Tgtd, two_clients) -> None:
    one, _ = two_clients
    assert discover(tgtd, one.initiator_iqn).returncode != 0


def test_discovery_is_open_when_discovery_auth_is_off(make_config, tgtd: Tgtd,
                                                      builtin_image: Image) -> None:
    config = make_config(f"""
        target:
          portal_address: {tgtd.portal[0]}
          portal_port: {tgtd.portal[1]}
          tgt_control_port: {tgtd.control_port}
          discovery_auth: false
        """)
    backend = TgtBackend(tgtd.control_port, config.storage.state_dir)
    with Inventory(config.storage.database) as inventory:
        one = add_client(config, inventory, MAC1, image="builtin", backend=backend).client
    done = discover(tgtd, one.initiator_iqn)
    assert done.returncode == 0, done.stderr
    assert one.target_iqn in done.stdout


def test_two_clones_of_one_image_are_isolated(tgtd: Tgtd, two_clients) -> None:
    one, two = two_clients
    assert qemu_io(tgtd, one, "write -P 0xaa 8M 64k", write=True).returncode == 0
    assert qemu_io(tgtd, two, "write -P 0x55 8M 64k", write=True).returncode == 0
    assert qemu_io(tgtd, one, "read -P 0xaa 8M 64k").returncode == 0
    seen = qemu_io(tgtd, two, "read -P 0x55 8M 64k")
    assert seen.returncode == 0 and "Pattern verification failed" not in seen.stdout


def test_removed_client_target_is_gone_and_data_kept(target_config: Config, tgtd: Tgtd,
                                                     inventory: Inventory, backend: TgtBackend,
                                                     two_clients) -> None:
    one, _ = two_clients
    remove_client(target_config, inventory, one.mac, backend=backend)
    assert one.target_iqn not in {t.iqn for t in backend.targets()}
    assert Path(one.lun_path).is_file()
    done = read_capacity(tgtd, one.initiator_iqn, one.chap_user, one.chap_secret, one.target_iqn)
    assert done.returncode != 0


def test_removing_a_client_whose_initiator_stopped_reading_closes_it_out(
        target_config: Config, tgtd: Tgtd, inventory: Inventory, backend: TgtBackend,
        two_clients, caplog: pytest.LogCaptureFixture) -> None:
    """An initiator frozen mid-read (a VM powered off under I/O) leaves tgtd's answers
    queued, which keep its LUN busy; removal closes its connection, then the target goes."""
    one, _ = two_clients
    url = (f"iscsi://{one.chap_user}%{one.chap_secret}@{tgtd.url}/{one.target_iqn}/1")
    reader = subprocess.Popen(["iscsi-perf", "-i", one.initiator_iqn, "-m", "64", "-b", "2048",
                               "-t", "60", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert eventually(lambda: any(t.iqn == one.target_iqn and t.logins
                                      for t in backend.targets()), 10)
        time.sleep(0.5)  # reads under way
        os.kill(reader.pid, signal.SIGSTOP)
        time.sleep(1)  # tgtd's answers fill the connection
        remove_client(target_config, inventory, one.mac, purge=True, backend=backend)
        assert one.target_iqn not in {t.iqn for t in backend.targets()}
        assert "reset them" in caplog.text
    finally:
        reader.kill()
        reader.wait()


def test_purge_deletes_the_root_lun(target_config: Config, inventory: Inventory,
                                    backend: TgtBackend, two_clients) -> None:
    one, _ = two_clients
    remove_client(target_config, inventory, one.mac, purge=True, backend=backend)
    assert not Path(one.lun_path).exists()


def test_reconcile_twice_changes_nothing(target_config: Config, inventory: Inventory,
                                         backend: TgtBackend, two_clients) -> None:
    reconcile(target_config, inventory, backend)
    assert not reconcile(target_config, inventory, backend)


def test_reconcile_from_a_new_process_changes_nothing(target_config: Config,
                                                      inventory: Inventory, tgtd: Tgtd,
                                                      two_clients) -> None:
    fresh = TgtBackend(tgtd.control_port, target_config.storage.state_dir)
    assert not reconcile(target_config, inventory, fresh)


def test_restarted_tgtd_gets_every_target_back(target_config: Config, inventory: Inventory,
                                               tgtd: Tgtd, backend: TgtBackend,
                                               two_clients) -> None:
    from netboot.target.tgtd import start_tgtd, stop_tgtd

    one, two = two_clients
    stop_tgtd(tgtd.control_port)
    start_tgtd(tgtd.control_port, tgtd.portal)
    assert backend.targets() == []
    assert reconcile(target_config, inventory, backend).changes
    assert {t.iqn for t in backend.targets()} == {one.target_iqn, two.target_iqn}
    done = read_capacity(tgtd, one.initiator_iqn, one.chap_user, one.chap_secret, one.target_iqn)
    assert done.returncode == 0, done.stderr


def test_extra_file_and_device_luns_are_luns_2_and_3(target_config: Config, tgtd: Tgtd,
                                                     inventory: Inventory, backend: TgtBackend,
                                                     two_clients, tmp_path: Path,
                                                     loop_device) -> None:
    one, _ = two_clients
    owner = LunOwner(OwnerKind.CLIENT, one.mac)
    add_lun(target_config, inventory, owner, file=tmp_path / "data.raw", size=96 << 20)
    add_lun(target_config, inventory, owner, device=loop_device(40 << 20))
    reconcile(target_config, inventory, backend)
    sizes = {lun: read_capacity(tgtd, one.initiator_iqn, one.chap_user, one.chap_secret,
                                one.target_iqn, lun).stdout.strip() for lun in (2, 3)}
    assert sizes == {2: str(96 << 20), 3: str(40 << 20)}


def test_removing_a_middle_client_keeps_tgtd_alive(target_config: Config, tgtd: Tgtd,
                                                   inventory: Inventory, backend: TgtBackend,
                                                   two_clients) -> None:
    """tgt crashes on `show` after a discovery account is unbound from a middle slot."""
    one, two = two_clients
    add_client(target_config, inventory, MAC3, image="builtin", backend=backend)
    remove_client(target_config, inventory, one.mac, backend=backend)
    assert backend.running() is not None
    done = discover(tgtd, two.initiator_iqn, two.chap_user, two.chap_secret)
    assert done.returncode == 0, done.stderr
    assert two.target_iqn in done.stdout


def test_reconcile_leaves_targets_outside_its_prefix_alone(target_config: Config, tgtd: Tgtd,
                                                           inventory: Inventory,
                                                           backend: TgtBackend,
                                                           two_clients) -> None:
    foreign = "iqn.2001-04.com.example:storage.admin-made"
    tgtadm(tgtd.control_port, "--mode", "target", "--op", "new", "--tid", "99",
           "--targetname", foreign)
    reconcile(target_config, inventory, backend)
    assert foreign in {t.iqn for t in backend.targets()}


def test_stray_target_under_the_prefix_is_removed(target_config: Config, tgtd: Tgtd,
                                                  inventory: Inventory, backend: TgtBackend,
                                                  two_clients) -> None:
    stray = "iqn.2026-11.org.example:target:gone"
    tgtadm(tgtd.control_port, "--mode", "target", "--op", "new", "--tid", "99",
           "--targetname", stray)
    reconcile(target_config, inventory, backend)
    assert stray not in {t.iqn for t in backend.targets()}


def test_seventeenth_discovery_account_is_left_out_and_tgtd_survives(
        target_config: Config, tgtd: Tgtd, inventory: Inventory, backend: TgtBackend) -> None:
    """tgt's global target holds 16 accounts; binding a 17th crashes tgtd."""
    clients = [add_client(target_config, inventory, f"52:54:00:00:01:{i:02x}", size=1 << 20,
                          backend=backend).client for i in range(17)]
    outcome = reconcile(target_config, inventory, backend)
    assert backend.running() is not None
    assert clients[-1].chap_user in outcome.failed["discovery"]
    last = clients[-1]
    assert read_capacity(tgtd, last.initiator_iqn, last.chap_user, last.chap_secret,
                         last.target_iqn).returncode == 0
    first = clients[0]
    assert discover(tgtd, first.initiator_iqn, first.chap_user,
                    first.chap_secret).returncode == 0


def test_overlay_clients_share_the_image_read_only_and_write_their_own_upper(
        tgtd: Tgtd, target_config: Config, inventory: Inventory, backend: TgtBackend,
        builtin_image: Image) -> None:
    """Two overlay clients: LUN 255 of each target is the image file itself, read-only
    over the wire (tgt answers a write with DATA PROTECT), readable; LUN 1 is each one's
    own upper layer, writable. A second reconcile changes nothing."""
    before = builtin_image.path.read_bytes()
    one = add_client(target_config, inventory, MAC1, image="builtin", backend=backend,
                     boot_method=BootMethod.OVERLAY, overlay_size=16 << 20).client
    two = add_client(target_config, inventory, MAC2, image="builtin", backend=backend,
                     boot_method=BootMethod.OVERLAY).client
    assert (one.lun_size, two.lun_size) == (16 << 20, 2 << 30)
    shown = {t.iqn: t.luns for t in backend.targets()}
    for client in (one, two):
        assert shown[client.target_iqn] == (
            Lun(ROOT_LUN, str(client.lun_path)),
            Lun(LOWER_LUN, str(builtin_image.path), readonly=True))
    # QEMU reads the write-protect bit (MODE SENSE) and will not open it for writing ...
    denied = qemu_io(tgtd, one, "write -P 0xaa 0 64k", lun=LOWER_LUN, write=True)
    assert denied.returncode != 0 and "write protected" in denied.stderr, denied
    # ... and WRITE commands sent anyway are refused: libiscsi's read-only SBC test sends
    # WRITE 10/12/16, WRITE AND VERIFY, WRITE SAME ... and expects DATA PROTECT. tgt 1.0.85
    # answers each WRITE so; WRITE SAME it refuses earlier, with ILLEGAL REQUEST (its
    # usr/sbc.c checks the CDB before the read-only flag): refused all the same.
    url = (f"iscsi://{one.chap_user}%{one.chap_secret}@{tgtd.url}/{one.target_iqn}/"
           f"{LOWER_LUN}")
    done = iscsi(["iscsi-test-cu", "--dataloss", "--test=ALL.ReadOnly.ReadOnlySBC", "-i",
                  one.initiator_iqn, url])
    report = done.stdout + done.stderr
    assert "Test: ReadOnlySBC" in report and "--dataloss flag is not set" not in report, report
    failed = [line for line in report.splitlines() if "[FAILED]" in line]
    assert all("WRITESAME" in line and "failed with wrong sense" in line
               for line in failed), report
    read = qemu_io(tgtd, two, "read -v 1080 2", lun=LOWER_LUN)
    assert read.returncode == 0 and "53 ef" in read.stdout, read.stderr
    wrote = qemu_io(tgtd, one, "write -P 0x55 8M 64k", write=True)
    assert wrote.returncode == 0 and "error" not in wrote.stdout.lower(), wrote
    assert builtin_image.path.read_bytes() == before
    assert not reconcile(target_config, inventory, backend)
