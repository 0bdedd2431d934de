"""`netboot serve` over a wire: real DHCP clients, relays and servers in network namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from tests.conftest import needs_root
from tests.support import REPO
from tests.support.netlab import Lab, solicit_router, write_config

pytestmark = [needs_root, pytest.mark.root]

CLIENT_MAC = "52:54:00:c0:ff:01"
OTHER_MAC = "52:54:00:c0:ff:02"
HOOK = """\
#!/bin/sh
# DHCP client hook: keep the environment of the bound event, do nothing else.
case "$1$reason" in *bound*|*BOUND*) env > "{out}.tmp" && mv "{out}.tmp" "{out}";; esac
exit 0
"""


@pytest.fixture
def lab(tmp_path):
    made = Lab(tmp_path)
    yield made
    made.close()


@pytest.fixture
def served(lab, tmp_path):
    """Server and client namespaces on one veth pair; config written, one client registered."""

    class Served:
        def __init__(self, extra: str = "", register: tuple[str, ...] = (CLIENT_MAC,)) -> None:
            self.srv, self.cli = lab.netns("s"), lab.netns("c")
            self.srv_if, self.cli_if = lab.link(self.srv, self.cli, address_a="198.18.0.1/24",
                                                mac_b=CLIENT_MAC)
            self.config_path = write_config(tmp_path / "netboot.yaml", self.srv_if, tmp_path,
                                            extra=extra)
            self.config = load_config(self.config_path)
            self.log = tmp_path / "serve.log"
            with Inventory(self.config.storage.database) as inventory:
                self.clients = {mac: add_client(self.config, inventory, mac).client
                                for mac in register}
            self.proc = None

        def start(self):
            self.proc = lab.serve(self.srv, self.config_path, self.log)
            return self.proc

        def stop(self) -> str:
            assert lab.stop(self.proc) == 0, self.log.read_text()
            return self.log.read_text()

    return Served


def hook(tmp_path, name: str):
    out = tmp_path / f"{name}.env"
    script = tmp_path / f"{name}.sh"
    script.write_text(HOOK.format(out=out))
    script.chmod(0o755)
    return script, out


def env_of(path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def udhcpc(lab: Lab, ns: str, interface: str, tmp_path, *extra: str) -> dict[str, str]:
    script, out = hook(tmp_path, f"udhcpc-{interface}")
    lab.run(ns, ["udhcpc", "-f", "-q", "-n", "-t", "5", "-T", "1", "-i", interface,
                 "-s", str(script), "-O", "bootfile", "-O", "tftp", *extra], timeout=30)
    return env_of(out)


def test_udhcpc_gets_reserved_address_and_boot_file(served, lab, tmp_path):
    s = served()
    s.start()
    env = udhcpc(lab, s.cli, s.cli_if, tmp_path, "-V", "PXEClient:Arch:00000:UNDI:002001")
    assert env["ip"] == str(s.clients[CLIENT_MAC].ip)
    assert env["boot_file"] == "undionly.kpxe"
    assert env["siaddr"] == "198.18.0.1"
    assert "ack" in s.stop()


def test_dhclient_gets_reserved_address_and_boot_file(served, lab, tmp_path):
    s = served()
    s.start()
    script, out = hook(tmp_path, "dhclient")
    conf = tmp_path / "dhclient.conf"
    conf.write_text("request subnet-mask, routers, host-name, bootfile-name, tftp-server-name;\n"
                    'send vendor-class-identifier "PXEClient:Arch:00007:UNDI:003016";\n'
                    "send dhcp-client-identifier = hardware;\n")
    # In the foreground (-d), so the test owns the process: dhclient -1 forks once bound,
    # and a pid file read too early left it running after the test.
    proc = lab.spawn(s.cli, ["dhclient", "-d", "-1", "-4", "-cf", str(conf), "-sf", str(script),
                             "-lf", str(tmp_path / "dhclient.leases"),
                             "-pf", str(tmp_path / "dhclient.pid"), s.cli_if],
                     tmp_path / "dhclient.log")
    try:
        deadline = time.monotonic() + 60
        while "new_ip_address=" not in (out.read_text() if out.exists() else ""):
            assert proc.poll() is None, (tmp_path / "dhclient.log").read_text()
            assert time.monotonic() < deadline, "dhclient got no lease in 60 s"
            time.sleep(0.1)
        env = env_of(out)
    finally:
        lab.stop(proc)
    assert env["new_ip_address"] == str(s.clients[CLIENT_MAC].ip)
    assert env["new_filename"] == "ipxe.efi"
    assert env["new_bootfile_name"] == "ipxe.efi"
    s.stop()


def test_ack_records_dhcp_stage(served, lab, tmp_path):
    s = served()
    s.start()
    udhcpc(lab, s.cli, s.cli_if, tmp_path)
    s.stop()
    with Inventory(s.config.storage.database) as inventory:
        assert inventory.get(CLIENT_MAC).last_stage == "dhcp"


def test_unknown_machine_is_ignored_and_listed(served, lab, tmp_path):
    s = served(register=())
    s.start()
    script, _ = hook(tmp_path, "unknown")
    proc = lab.run(s.cli, ["udhcpc", "-f", "-q", "-n", "-t", "2", "-T", "1", "-i", s.cli_if,
                           "-s", str(script)], check=False, timeout=30)
    assert proc.returncode != 0
    s.stop()
    with Inventory(s.config.storage.database) as inventory:
        assert [m.mac for m in inventory.unknown_machines()] == [CLIENT_MAC]


def test_dynamic_lease_is_kept_across_restart(served, lab, tmp_path):
    s = served("  unknown: boot\n", register=())
    s.start()
    first = udhcpc(lab, s.cli, s.cli_if, tmp_path)["ip"]
    s.stop()
    # Another machine asks while the first one's lease stands: it must get another address.
    lab.run(s.cli, ["ip", "link", "set", s.cli_if, "address", OTHER_MAC])
    s.start()
    second = udhcpc(lab, s.cli, s.cli_if, tmp_path)["ip"]
    lab.run(s.cli, ["ip", "link", "set", s.cli_if, "address", CLIENT_MAC])
    again = udhcpc(lab, s.cli, s.cli_if, tmp_path)["ip"]
    s.stop()
    assert second != first
    assert again == first


def test_router_solicitation_is_answered(served, lab):
    s = served("  router_advertisements: true\n")
    s.start()
    managed, lifetime, source = solicit_router(lab, s.cli, s.cli_if)
    assert (managed, lifetime) == (0, 0)  # no DHCPv6; lifetime 0: not a default router
    assert source.startswith("fe80::")
    s.stop()


def test_serve_survives_garbage_and_still_answers(served, lab, tmp_path):
    s = served()
    s.start()
    burst = textwrap.dedent(f"""
        import os, random, socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"{s.cli_if}")
        s.bind(("0.0.0.0", 68))  # a client's port: from any other, netboot drops it unread
        rng = random.Random(4)
        base = bytes.fromhex("{_discover_hex()}")
        for i in range(2000):
            if i % 2:
                data = bytearray(base)
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data[: rng.randint(1, len(data))])
            else:
                data = os.urandom(rng.randint(0, 1500))
            s.sendto(data, ("255.255.255.255", 67))
    """)
    lab.run(s.cli, ["python3", "-c", burst], timeout=60)
    env = udhcpc(lab, s.cli, s.cli_if, tmp_path)
    assert env["ip"] == str(s.clients[CLIENT_MAC].ip)
    log = s.stop()
    assert "errors 0" in log
    assert "Traceback" not in log


def _discover_hex() -> str:
    from tests.support.dhcp_frames import intel_rom

    return intel_rom(CLIENT_MAC).hex()


def test_serve_refuses_an_interface_that_does_not_exist(lab, tmp_path):
    ns = lab.netns("s")
    config = write_config(tmp_path / "netboot.yaml", "nbnosuch0", tmp_path)
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "netboot", "--config", str(config),
         "serve"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "nbnosuch0" in proc.stderr


def dnsmasq(lab: Lab, ns: str, interface: str, tmp_path: Path) -> subprocess.Popen:
    """An ordinary DHCP server (addresses only, no DNS) as the network's existing one."""
    proc = lab.spawn(ns, ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                          f"--interface={interface}", "--bind-interfaces", "--log-dhcp",
                          "--dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,1h",
                          f"--dhcp-leasefile={tmp_path / 'dnsmasq.leases'}",
                          f"--pid-file={tmp_path / 'dnsmasq.pid'}"], tmp_path / "dnsmasq.log")
    time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "dnsmasq.log").read_text()
    return proc


def test_proxy_mode_beside_dnsmasq_gives_boot_file_not_address(lab, tmp_path):
    srv, dns, cli = lab.netns("s"), lab.netns("d"), lab.netns("c")
    ifs = lab.switch((srv, "198.18.0.1/24", None), (dns, "198.18.0.2/24", None),
                     (cli, None, CLIENT_MAC))
    config_path = write_config(tmp_path / "netboot.yaml", ifs[srv], tmp_path,
                               extra="  mode: proxy\n")
    config = load_config(config_path)
    with Inventory(config.storage.database) as inventory:
        add_client(config, inventory, CLIENT_MAC)
    dnsmasq(lab, dns, ifs[dns], tmp_path)
    serve = lab.serve(srv, config_path, tmp_path / "serve.log")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = lab.run(cli, [sys.executable, "-m", "tests.support.pxe_client", ifs[cli], CLIENT_MAC],
                  timeout=60, env=env).stdout
    result = json.loads(out)
    assert lab.stop(serve) == 0
    assert "address" in result, result
    assert result["proxy_offers"] == 1
    assert result["proxy_offer_file"] == "undionly.kpxe"
    assert result["address"].startswith("198.18.0.1")  # dnsmasq's range, not netboot's
    assert 100 <= int(result["address"].rsplit(".", 1)[1]) <= 150
    assert result["proxy_ack_file"] == "undionly.kpxe"
    assert result["proxy_ack_yiaddr"] == "0.0.0.0"


def test_relayed_request_through_dhcrelay_gets_its_answer(lab, tmp_path):
    cli, relay, srv = lab.netns("c"), lab.netns("r"), lab.netns("s")
    cli_if, relay_down = lab.link(cli, relay, address_b="198.18.0.126/24")
    lab.run(cli, ["ip", "link", "set", cli_if, "address", CLIENT_MAC])
    relay_up, srv_if = lab.link(relay, srv, address_a="198.18.1.2/24", address_b="198.18.1.1/24")
    lab.run(srv, ["ip", "addr", "add", "198.18.0.1/32", "dev", srv_if])
    lab.run(srv, ["ip", "route", "add", "198.18.0.0/24", "via", "198.18.1.2"])
    config_path = write_config(tmp_path / "netboot.yaml", srv_if, tmp_path)
    config = load_config(config_path)
    with Inventory(config.storage.database) as inventory:
        client = add_client(config, inventory, CLIENT_MAC).client
    lab.spawn(relay, ["dhcrelay", "-d", "-4", "-a", "--no-pid", "-id", relay_down,
                      "-iu", relay_up, "198.18.1.1"], tmp_path / "dhcrelay.log")
    serve = lab.serve(srv, config_path, tmp_path / "serve.log")
    time.sleep(0.5)
    env = udhcpc(lab, cli, cli_if, tmp_path, "-V", "PXEClient:Arch:00007:UNDI:003016")
    assert lab.stop(serve) == 0
    log = (tmp_path / "serve.log").read_text()
    assert env["ip"] == str(client.ip)
    assert env["boot_file"] == "ipxe.efi"
    assert "Forwarded BOOTREPLY" in (tmp_path / "dhcrelay.log").read_text()
    assert "ack 198.18.0." in log


def test_flooding_mac_is_rate_limited_and_others_still_served(served, lab, tmp_path):
    s = served(register=(CLIENT_MAC, OTHER_MAC))
    s.start()
    from tests.support.dhcp_frames import intel_rom

    flood = textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"{s.cli_if}")
        s.bind(("0.0.0.0", 68))  # a client's port: from any other, netboot drops it unread
        data = bytes.fromhex("{intel_rom(OTHER_MAC).hex()}")
        for _ in range(500):
            s.sendto(data, ("255.255.255.255", 67))
    """)
    lab.run(s.cli, ["python3", "-c", flood], timeout=60)
    env = udhcpc(lab, s.cli, s.cli_if, tmp_path)
    log = s.stop()
    assert env["ip"] == str(s.clients[CLIENT_MAC].ip)
    # Part of the burst is lost in the kernel before netboot reads it. Of what it reads, the
    # flooding MAC gets its burst (30) plus 10 per second of the time it took answered.
    stamps, offers, limited = [], 0, 0
    for line in log.splitlines():
        if OTHER_MAC not in line or " dhcp " not in line:
            continue
        stamps.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp())
        offers += ": offer " in line
        limited += "(rate-limited)" in line
    assert limited > 0
    assert offers <= 30 + 10 * (max(stamps) - min(stamps)) + 1


@pytest.fixture
def on_a_switch(lab, tmp_path):
    """Server, client and a third machine on one bridge; the client registered. ``extra``
    is added to the dhcp section."""

    class OnASwitch:
        def __init__(self, extra: str = "") -> None:
            self.srv, self.cli, self.other = lab.netns("s"), lab.netns("c"), lab.netns("o")
            self.ifs = lab.switch((self.srv, "198.18.0.1/24", None), (self.cli, None, CLIENT_MAC),
                                  (self.other, None, OTHER_MAC))
            path = write_config(tmp_path / "netboot.yaml", self.ifs[self.srv], tmp_path,
                                extra=extra)
            self.config = load_config(path)
            with Inventory(self.config.storage.database) as inventory:
                self.client = add_client(self.config, inventory, CLIENT_MAC).client
            self.serve = lab.serve(self.srv, path, tmp_path / "serve.log")

        def stop(self) -> str:
            assert lab.stop(self.serve) == 0
            return (tmp_path / "serve.log").read_text()

    return OnASwitch


def server_replies_seen(lab: Lab, ns: str, interface: str, tmp_path, during) -> list[str]:
    """The frames from port 67 that reach ``interface`` (promiscuous) while ``during()`` runs."""
    log = tmp_path / f"tcpdump-{ns}.log"
    proc = lab.spawn(ns, ["tcpdump", "-i", interface, "-n", "-e", "-l", "udp src port 67"], log)
    deadline = time.monotonic() + 10
    while "listening on" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.05)
    during()
    time.sleep(0.5)  # the last frames reach tcpdump
    lab.stop(proc)
    return [line for line in log.read_text().splitlines() if ".67 > " in line]


def test_reply_to_a_client_without_broadcast_flag_is_not_seen_by_another_machine(
        on_a_switch, lab, tmp_path):
    s = on_a_switch()
    got = {}
    seen = server_replies_seen(lab, s.other, s.ifs[s.other], tmp_path, lambda: got.update(
        udhcpc(lab, s.cli, s.ifs[s.cli], tmp_path)))
    s.stop()
    assert got["ip"] == str(s.client.ip)
    assert seen == []


def test_client_that_sets_the_broadcast_flag_gets_a_broadcast_reply(on_a_switch, lab,
                                                                     tmp_path):
    s = on_a_switch()
    got = {}
    seen = server_replies_seen(lab, s.other, s.ifs[s.other], tmp_path, lambda: got.update(
        udhcpc(lab, s.cli, s.ifs[s.cli], tmp_path, "-B")))
    s.stop()
    assert got["ip"] == str(s.client.ip)
    assert len(seen) >= 2  # OFFER and ACK
    assert all("> ff:ff:ff:ff:ff:ff" in line and "> 255.255.255.255.68" in line for line in seen)


def test_flood_of_random_macs_does_not_starve_a_registered_client(on_a_switch, lab, tmp_path):
    s = on_a_switch("  unknown_max: 100\n")
    flood = textwrap.dedent(f"""
        import random, socket, time
        from tests.support.dhcp_frames import intel_rom
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"{s.ifs[s.other]}")
        s.bind(("0.0.0.0", 68))
        rng = random.Random(13)
        frames = [intel_rom(":".join(f"{{b:02x}}" for b in (2, *rng.randbytes(5))))
                  for _ in range(2000)]
        print("ready", flush=True)
        while True:  # 3,000 a second: 60 times dhcp.unknown_rate, within what one loop reads
            for at, data in enumerate(frames):
                s.sendto(data, ("255.255.255.255", 67))
                if at % 30 == 29:
                    time.sleep(0.01)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "flood.log"
    out = log.open("ab")
    flooder = subprocess.Popen(["ip", "netns", "exec", s.other, sys.executable, "-c", flood],
                               stdout=out, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    out.close()
    lab.processes.append(flooder)
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text():
        assert time.monotonic() < deadline and flooder.poll() is None, log.read_text()
        time.sleep(0.1)
    time.sleep(1)  # the flood is under way
    env_got = udhcpc(lab, s.cli, s.ifs[s.cli], tmp_path)
    time.sleep(1)
    with Inventory(s.config.storage.database) as inventory:
        assert len(inventory.unknown_machines()) <= 100
    lab.stop(flooder)
    served_log = s.stop()
    assert env_got["ip"] == str(s.client.ip)
    stopped = next(line for line in served_log.splitlines() if "DHCP stopped" in line)
    assert "unknown-rate-limited" in stopped
    with Inventory(s.config.storage.database) as inventory:
        assert len(inventory.unknown_machines()) == 100
