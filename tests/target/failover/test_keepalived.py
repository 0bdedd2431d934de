"""keepalived's files as netboot renders them (golden), and the gratuitous ARP frame."""

from __future__ import annotations

from ipaddress import IPv4Interface
from pathlib import Path

from netboot.configfile import parse_config
from netboot.target.failover.address import gratuitous_arp
from netboot.target.failover.keepalived import Files, argv, keepalived_conf

GOLDEN = Path(__file__).parent / "golden"
CONFIG = """\
server:
  interface: vlan7
  address: 198.18.40.2
dhcp:
  subnet: 198.18.40.0/24
target:
  portal_address: 198.18.40.100
  failover:
    enabled: true
    virtual_router_id: 40
    priority: 150
    peer_storage_address: 198.19.254.3
storage:
  backend: rbd
"""


def test_keepalived_conf_matches_golden() -> None:
    text = keepalived_conf(parse_config(CONFIG), Path("/var/lib/netboot/failover/notify.sh"))
    assert text == (GOLDEN / "keepalived.conf").read_text()


def test_keepalived_runs_in_the_foreground_vrrp_only_with_pid_files_of_its_own() -> None:
    where = Files(Path("/s/failover"))
    assert argv(where) == ["keepalived", "-n", "-l", "-D", "-P",
                           "-f", "/s/failover/keepalived.conf",
                           "-p", "/s/failover/keepalived.pid", "-r", "/s/failover/vrrp.pid"]


def test_gratuitous_arp_asks_for_the_address_from_the_address_to_everyone() -> None:
    mac = bytes.fromhex("525400000001")
    frame = gratuitous_arp(mac, IPv4Interface("198.18.40.100/24"))
    ip = bytes([198, 18, 40, 100])
    assert frame[:14] == b"\xff" * 6 + mac + b"\x08\x06"
    assert frame[14:22] == bytes.fromhex("0001080006040001")  # Ethernet/IPv4, request
    assert frame[22:] == mac + ip + b"\0" * 6 + ip
