"""`netboot serve` on an IPv6-only wire: DHCPv6 and RAs to real clients in namespaces."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from netboot.configfile import load_config
from netboot.host import iproute
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from tests.conftest import needs_root
from tests.support import REPO
from tests.support.dhcp6_frames import ovmf_pxe
from tests.support.netlab import Lab, solicit_router, write_config

pytestmark = [needs_root, pytest.mark.root]

CLIENT_MAC = "52:54:00:c0:ff:61"
SERVER6 = "fd4e:6574:626f:1::1"
V6_ONLY = '  mode: "off"\ndhcp6:\n  subnet: fd4e:6574:626f:1::/64\n'
HOOK = """\
#!/bin/sh
case "$reason" in BOUND6|REBOOT6) env > "{out}.tmp" && mv "{out}.tmp" "{out}";; esac
exit 0
"""
# A firmware-shaped message from the client's link-local address; prints the reply's hex.
PROBE = """
import socket, sys
iface, payload = sys.argv[1], bytes.fromhex(sys.argv[2])
index = socket.if_nametoindex(iface)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
s.bind(("::", 546))
s.settimeout(5)
for data in (b"\\x01\\x00", payload):  # a truncated one first: dropped, counted
    s.sendto(data, ("ff02::1:2", 547, 0, index))
print(s.recvfrom(4096)[0].hex())
"""


@pytest.fixture
def served(tmp_path):
    """Server and client namespaces on one veth pair, IPv6 only; one client registered."""
    lab = Lab(tmp_path)
    srv, cli = lab.netns("s"), lab.netns("c")
    srv_if, cli_if = lab.link(srv, cli, mac_b=CLIENT_MAC)
    iproute.ip("-6", "addr", "add", f"{SERVER6}/64", "dev", srv_if, "nodad", netns=srv)
    path = write_config(tmp_path / "netboot.yaml", srv_if, tmp_path, extra=V6_ONLY)
    config = load_config(path)
    with Inventory(config.storage.database) as inventory:
        client = add_client(config, inventory, CLIENT_MAC).client
    log = tmp_path / "serve.log"
    proc = lab.serve(srv, path, log)
    time.sleep(0.5)  # link-local routes settle (DAD is off)
    yield SimpleNamespace(lab=lab, cli=cli, cli_if=cli_if, config=config, client=client,
                          log=log, proc=proc)
    assert lab.stop(proc) == 0, log.read_text()
    lab.close()


def test_dhclient_gets_the_clients_fixed_ipv6_address(served, tmp_path):
    s = served
    lab, cli, cli_if, config = s.lab, s.cli, s.cli_if, s.config
    out = tmp_path / "dhclient6.env"
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK.format(out=out))
    hook.chmod(0o755)
    dhclient = lab.spawn(cli, ["dhclient", "-6", "-d", "-1", "-D", "LL", "-sf", str(hook),
                           "-lf", str(tmp_path / "d6.leases"), "-pf", str(tmp_path / "d6.pid"),
                           cli_if], tmp_path / "dhclient.log")
    deadline = time.monotonic() + 60
    while not out.exists():
        assert dhclient.poll() is None, (tmp_path / "dhclient.log").read_text()
        assert time.monotonic() < deadline, "dhclient -6 got no lease in 60 s"
        time.sleep(0.1)
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["new_ip6_address"] == str(config.ipv6_of(s.client.ip))
    lab.stop(dhclient)


def test_ovmf_shaped_solicit_is_advertised_its_tftp_url_and_garbage_is_counted(served):
    s = served
    lab, cli, cli_if, config = s.lab, s.cli, s.cli_if, s.config
    reply = bytes.fromhex(lab.run(cli, [sys.executable, "-c", PROBE, cli_if, ovmf_pxe().hex()],
                                  timeout=20, env={"PYTHONPATH": str(REPO)}).stdout)
    assert reply[0] == 2  # ADVERTISE
    assert f"tftp://[{SERVER6}]/ipxe.efi".encode() in reply
    assert config.ipv6_of(s.client.ip).packed in reply
    assert lab.stop(s.proc) == 0
    assert "DHCPv6 stopped: received 2, replied 1, unanswered 0, errors 0, dropped: truncated 1" \
        in s.log.read_text()


def test_router_solicitation_gets_an_ra_with_the_m_flag(served):
    managed, lifetime, _ = solicit_router(served.lab, served.cli, served.cli_if)
    assert (managed, lifetime) == (1, 0)


def test_a_request_records_the_dhcp_stage(served):
    from scapy.layers.dhcp6 import DHCP6_Request, DHCP6OptServerId

    from netboot.dhcp6.packet import duid_ll

    s = served
    lab, cli, cli_if, config = s.lab, s.cli, s.cli_if, s.config
    advertise = bytes.fromhex(lab.run(cli, [sys.executable, "-c", PROBE, cli_if,
                                            ovmf_pxe().hex()], timeout=20,
                                      env={"PYTHONPATH": str(REPO)}).stdout)
    at = advertise.index(b"\x00\x02\x00\x0a")  # option 2, 10 bytes: the server's DUID-LL
    server_duid = advertise[at + 4 : at + 14]
    assert server_duid[:4] == duid_ll("00:00:00:00:00:00")[:4]
    request = ovmf_pxe(DHCP6_Request, 7, DHCP6OptServerId(duid=server_duid))
    reply = bytes.fromhex(lab.run(cli, [sys.executable, "-c", PROBE, cli_if, request.hex()],
                                  timeout=20, env={"PYTHONPATH": str(REPO)}).stdout)
    assert reply[0] == 7  # REPLY
    deadline = time.monotonic() + 10
    with Inventory(config.storage.database) as inventory:
        while inventory.find(CLIENT_MAC).last_stage is not Stage.DHCP:
            assert time.monotonic() < deadline, s.log.read_text()
            time.sleep(0.2)
