"""``/metrics``: the published counters and the inventory in Prometheus's text format."""

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netboot.admin.metrics import Sources, render
from netboot.counters import Kind, Sample
from netboot.inventory.stages import Stage
from netboot.inventory.store import open_inventory
from netboot.provisioning.clients import add_client

MAC = "52:54:00:00:00:01"
COUNTERS = [Sample("dhcp_requests", Kind.COUNTER, "DHCP requests received", 5),
            Sample("dhcp_dropped", Kind.COUNTER, "DHCP packets dropped, by reason", 2,
                   (("reason", "malformed"),)),
            Sample("target_sessions", Kind.GAUGE, "iSCSI sessions on the target", 1)]


@pytest.fixture
def page(make_config) -> str:
    config = make_config("target:\n  manage: false\n")
    with open_inventory(config) as inventory:
        add_client(config, inventory, MAC, hostname="web1")
        inventory.record_stage(MAC, Stage.DHCP, at=1000.0)
        inventory.record_stage(MAC, Stage.LOGIN, at=1009.0)
    return render(Sources(lambda: COUNTERS, lambda: open_inventory(config))).decode()


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(page) for s in family.samples}


def test_counters_get_the_prefix_and_total_suffix(page):
    found = samples(page)
    assert found[("netboot_dhcp_requests_total", ())] == 5
    assert found[("netboot_dhcp_dropped_total", (("reason", "malformed"),))] == 2
    assert found[("netboot_target_sessions", ())] == 1


def test_each_client_has_its_stage_last_seen_and_seconds_to_each_stage(page):
    found = samples(page)
    who = (("hostname", "web1"), ("mac", MAC))
    assert found[("netboot_client_last_seen_timestamp_seconds", who)] == 1009.0
    assert found[("netboot_client_stage", (*who, ("stage", "login")))] == 1
    assert found[("netboot_client_stage_index", who)] == 6
    assert found[("netboot_client_last_boot_stage_seconds", (*who, ("stage", "login")))] == 9.0
    assert found[("netboot_clients", ())] == 1


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool missing: make setup installs Debian's prometheus")
def test_promtool_finds_no_problem(page):
    check = subprocess.run(["promtool", "check", "metrics"], input=page, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
