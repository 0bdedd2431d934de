"""A SAN host set up as its admin would: `host add`, `lun add`, then libiscsi in a network
namespace of its own logging in to a tgtd in another with exactly what `host show
--initiator-config` printed (parsed from that text).

libiscsi takes CHAP in its URL (``iscsi://USER%SECRET@PORTAL/IQN/LUN``, mutual CHAP as
``?target_user=&target_password=``), as the other target tests pass it: a test tool's
argv, never the product's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from netboot.cli import cli
from netboot.config import Config
from netboot.target.tgtd import free_control_port, start_tgtd
from netboot.target.tgtshow import parse_global_accounts
from tests.conftest import needs_root
from tests.support.netlab import Lab
from tests.support.tgtfixtures import tgtadm

pytestmark = [needs_root, pytest.mark.root]

INITIATOR = "iqn.2026-11.org.example:db1"
PORTAL = "198.18.0.1:3260"


def netboot(config: Config, *args: str) -> str:
    done = CliRunner().invoke(cli, ["--config", str(config.source), *args])
    assert done.exit_code == 0, done.output
    return done.output


def settings(text: str) -> dict[str, str]:
    """``key = value`` and ``key=value`` lines of the printed initiator config."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "iscsiadm")):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


@dataclass(frozen=True)
class San:
    lab: Lab
    config: Config
    netns: str  # the SAN host's namespace
    printed: dict[str, str]  # what `host show --initiator-config` printed
    target: str

    def url(self, user: str, secret: str, path: str = "", user_in: str = "",
            secret_in: str = "") -> str:
        mutual = f"?target_user={user_in}&target_password={secret_in}" if user_in else ""
        return f"iscsi://{user}%{secret}@{PORTAL}{path}{mutual}"

    def iscsi(self, *argv: str, initiator: str = INITIATOR):
        return self.lab.run(self.netns, [argv[0], "-i", initiator, *argv[1:]], check=False)

    def session_url(self, lun: int, *, secret_in: str | None = None) -> str:
        p = self.printed
        return self.url(p["node.session.auth.username"], p["node.session.auth.password"],
                        f"/{self.target}/{lun}", p["node.session.auth.username_in"],
                        secret_in or p["node.session.auth.password_in"])

    def discovery_url(self, *, secret_in: str | None = None) -> str:
        p = self.printed
        return self.url(p["discovery.sendtargets.auth.username"],
                        p["discovery.sendtargets.auth.password"], "/",
                        p["discovery.sendtargets.auth.username_in"],
                        secret_in or p["discovery.sendtargets.auth.password_in"])


@pytest.fixture
def san(tmp_path: Path, make_config) -> Iterator[San]:
    """tgtd in a server namespace, a SAN host namespace on a veth to it; host db1 registered
    with LUNs of 8M and 16M."""
    lab = Lab(tmp_path)
    try:
        server, host = lab.netns("s"), lab.netns("i")
        lab.link(server, host, address_a="198.18.0.1/24", address_b="198.18.0.10/24")
        port = free_control_port()
        config = make_config(f"target:\n  tgt_control_port: {port}\n")
        lab.tgtd_ports.add(port)
        start_tgtd(port, config.portal, netns=server)
        netboot(config, "host", "add", "db1", "--iqn", INITIATOR)
        for name, size in (("a", "8M"), ("b", "16M")):
            netboot(config, "lun", "add", "db1", "--file", str(tmp_path / f"{name}.raw"),
                    "--size", size)
        printed = settings(netboot(config, "host", "show", "db1", "--initiator-config"))
        yield San(lab, config, host, printed, f"{config.target.iqn_authority}:target:db1")
    finally:
        lab.close()


def test_the_printed_initiator_name_is_the_one_registered(san: San) -> None:
    assert san.printed["InitiatorName"] == INITIATOR


def test_login_with_the_printed_chap_and_mutual_chap_sees_each_lun(san: San) -> None:
    sizes = [san.iscsi("iscsi-readcapacity16", "-s", san.session_url(lun)) for lun in (1, 2)]
    assert [s.returncode for s in sizes] == [0, 0], [s.stderr for s in sizes]
    assert [int(s.stdout) for s in sizes] == [8 << 20, 16 << 20]


def test_login_with_a_wrong_mutual_secret_fails(san: San) -> None:
    done = san.iscsi("iscsi-readcapacity16", "-s", san.session_url(1, secret_in="W" * 16))
    assert done.returncode != 0
    assert "Invalid CHAP_R" in done.stderr


def test_another_initiator_with_the_hosts_secrets_is_refused(san: San) -> None:
    done = san.iscsi("iscsi-readcapacity16", "-s", san.session_url(1),
                     initiator="iqn.2026-11.org.example:other")
    assert done.returncode != 0


def test_inquiry_of_lun_1_answers_as_a_disk(san: San) -> None:
    done = san.iscsi("iscsi-inq", san.session_url(1))
    assert done.returncode == 0, done.stderr
    assert "Peripheral Device Type:DIRECT_ACCESS" in done.stdout


def test_discovery_with_the_printed_mutual_chap_lists_the_hosts_target(san: San) -> None:
    done = san.iscsi("iscsi-ls", san.discovery_url())
    assert done.returncode == 0, done.stderr
    assert f"Target:{san.target} Portal:{PORTAL}" in done.stdout


def test_discovery_with_a_wrong_mutual_secret_fails(san: San) -> None:
    done = san.iscsi("iscsi-ls", san.discovery_url(secret_in="W" * 16))
    assert done.returncode != 0
    assert "Invalid CHAP_R" in done.stderr


def test_discovery_admits_the_hosts_account_and_answers_with_the_shared_one(san: San) -> None:
    system = tgtadm(san.config.target.tgt_control_port, "--mode", "system", "--op", "show")
    assert parse_global_accounts(system) == (["db1"], "netboot_discovery")


def test_removed_host_loses_its_target_and_discovery_its_mutual_account(san: San) -> None:
    netboot(san.config, "host", "remove", "db1")
    assert json.loads(netboot(san.config, "target", "list", "--json")) == []
    system = tgtadm(san.config.target.tgt_control_port, "--mode", "system", "--op", "show")
    assert parse_global_accounts(system) == ([], None)
