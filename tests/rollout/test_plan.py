"""A roll-out's decisions on plain records: selection, batches, and each boot's verdict."""

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from netboot.errors import ValidationError
from netboot.inventory.clients import Client
from netboot.inventory.stages import Stage
from netboot.rollout.plan import Outcome, batches, judge, select


def client(n: int, hostname: str) -> Client:
    return Client(mac=f"52:54:00:00:00:{n:02x}", hostname=hostname,
                  ip=IPv4Address(f"198.18.0.{n + 10}"), image="os@1", lun_path=None,
                  lun_size=1 << 30, initiator_iqn=f"iqn.x:i{n}", target_iqn=f"iqn.x:t{n}",
                  chap_user=hostname, chap_secret="s" * 16, mutual_secret="m" * 16)


FLEET = [client(1, "web-1"), client(2, "web-2"), client(3, "db-1"), client(4, "web-3")]
BOOT = [(Stage.DHCP, 100.0), (Stage.LOADER, 101.0), (Stage.KERNEL, 102.0),
        (Stage.INITRAMFS, 104.0), (Stage.NETWORK, 104.0), (Stage.LOGIN, 106.0),
        (Stage.ROOT, 107.0)]


def test_globs_and_macs_select_in_inventory_order():
    chosen = select(FLEET, ["web-*", "52:54:00:00:00:03"], everyone=False)
    assert [c.hostname for c in chosen] == ["web-1", "web-2", "db-1", "web-3"]


def test_a_mac_in_any_spelling_selects_its_client():
    assert [c.hostname for c in select(FLEET, ["52-54-00-00-00-02"], everyone=False)] == [
        "web-2"]


def test_a_selector_that_names_nobody_is_an_error():
    with pytest.raises(ValidationError, match="no client is named 'wbe-1'"):
        select(FLEET, ["web-1", "wbe-1"], everyone=False)


def test_all_and_names_together_are_refused():
    with pytest.raises(ValidationError, match="not both"):
        select(FLEET, ["web-1"], everyone=True)


def test_the_canary_goes_alone_then_batches_of_k():
    assert [[c.hostname for c in b] for b in batches(FLEET, 2, 1)] == [
        ["web-1"], ["web-2", "db-1"], ["web-3"]]


def test_without_a_canary_every_batch_is_k():
    assert [len(b) for b in batches(FLEET, 3, 0)] == [3, 1]


def test_a_boot_still_going_is_waiting_at_its_furthest_stage():
    verdict = judge(BOOT[:4], FLEET[0], "os@2", since=99.0, now=105.0, deadline=300.0)
    assert (verdict.outcome, verdict.stage) == (Outcome.WAITING, Stage.INITRAMFS)


def test_os_up_on_the_new_version_is_up():
    up = replace(FLEET[0], image="os@2", booted_image="os@2")
    verdict = judge([*BOOT, (Stage.OS_UP, 120.0)], up, "os@2", 99.0, 121.0, 300.0)
    assert verdict.outcome is Outcome.UP


def test_os_up_on_another_version_is_not_up():
    stale = replace(FLEET[0], image="os@2", booted_image="os@1")
    verdict = judge([*BOOT, (Stage.OS_UP, 120.0)], stale, "os@2", 99.0, 121.0, 300.0)
    assert verdict.outcome is Outcome.WRONG_VERSION


def test_stages_of_an_earlier_boot_do_not_count():
    earlier = [(stage, at - 90.0) for stage, at in BOOT] + [(Stage.OS_UP, 30.0)]
    verdict = judge(earlier, FLEET[0], "os@2", since=99.0, now=100.0, deadline=300.0)
    assert (verdict.outcome, verdict.stage) == (Outcome.WAITING, None)


def test_a_reported_failure_names_the_stage_before_it():
    verdict = judge([*BOOT[:5], (Stage.FAILED, 105.0)], FLEET[0], "os@2", 99.0, 106.0, 300.0)
    assert (verdict.outcome, verdict.stage) == (Outcome.FAILED, Stage.NETWORK)
    assert str(verdict) == "failed after stage network"


def test_past_the_deadline_without_os_up_is_timed_out_at_its_furthest_stage():
    verdict = judge(BOOT, FLEET[0], "os@2", 99.0, 400.0, 300.0)
    assert (verdict.outcome, verdict.stage) == (Outcome.TIMED_OUT, Stage.ROOT)


def test_the_furthest_stage_is_by_boot_order_not_by_arrival():
    """/init's DHCP arrives after the kernel stage; the boot is still past its kernel."""
    verdict = judge([(Stage.DHCP, 100.0), (Stage.KERNEL, 102.0), (Stage.DHCP, 104.0)],
                    FLEET[0], "os@2", 99.0, 105.0, 300.0)
    assert verdict.stage is Stage.KERNEL
