"""The threat model over a wire: `netboot serve` with tokens, a booted client, a thief.

Three namespaces on one bridge: the server (``netboot serve`` with its DHCP,
HTTP and a tgtd of its own), the client, which boots as far as the server can
tell (iPXE's DHCP exchange, its script and initrd part by token, a session on
its target held by a libiscsi initiator, ``root`` reported), and a thief, a
root host on the same VLAN. What the README's threat model promises is checked
as each of them would try it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.config import SERVICE_USER
from netboot.configfile import load_config
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from netboot.storage.images import build_builtin
from tests.conftest import needs_root
from tests.support import REPO
from tests.support.netlab import Lab, write_config
from tests.support.waiting import eventually

pytestmark = [needs_root, pytest.mark.root]

MAC = "52:54:00:c0:ff:11"
SERVER = "198.18.0.1"
THIEF = "198.18.0.66/24"  # the thief's own address
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
SECRETS = re.compile(rb"ISCSI_(?:USERNAME|PASSWORD)='?([A-Za-z0-9.:_-]+)'?")


@dataclass
class Booted:
    lab: Lab
    server: str
    client: str
    thief: str
    interfaces: dict[str, str]
    address: str
    log: Path
    spent: str  # the initrd part's path, its token spent by the boot
    username: str
    password: str
    initiator: str
    target: str
    session: subprocess.Popen
    serve: subprocess.Popen | None = None

    def http(self, ns: str, path: str, *, user: list[str] = ()) -> tuple[int, bytes]:
        done = self.lab.run(ns, [*user, "curl", "-sS", "--max-time", "10", "-o", "-", "-w",
                                 "\n%{http_code}", f"http://{SERVER}:8080/{path}"],
                            check=False, text=False)
        body, _, code = done.stdout.rpartition(b"\n")
        return int(code or 0), body

    def exchange(self, ns: str) -> dict:
        """iPXE's DHCP exchange for the client's MAC, from namespace ``ns``."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = self.lab.run(ns, [sys.executable, "-m", "tests.support.boot_exchange",
                                 self.interfaces[ns], MAC], env=env, timeout=30)
        return json.loads(done.stdout)

    def logs_in(self, ns: str, password: str) -> subprocess.CompletedProcess:
        url = f"iscsi://{self.username}%{password}@{SERVER}:3260/{self.target}/1"
        return self.lab.run(ns, ["iscsi-readcapacity16", "-s", "-i", self.initiator, url],
                            check=False)


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    tmp = tmp_path_factory.mktemp("windows")
    lab = Lab(tmp)
    try:
        server, client, thief = lab.netns("s"), lab.netns("c"), lab.netns("t")
        interfaces = lab.switch((server, f"{SERVER}/24", None), (client, None, MAC),
                                (thief, THIEF, None))
        path = write_config(tmp / "netboot.yaml", interfaces[server], tmp)
        config = load_config(path)
        build_builtin(config)
        with Inventory(config.storage.database) as inventory:
            record = add_client(config, inventory, MAC, image="builtin", size=32 << 20).client
        log = tmp / "serve.log"
        serve = lab.serve(server, path, log)
        booted = Booted(lab, server, client, thief, interfaces, "", log, "", "", "",
                        record.initiator_iqn, record.target_iqn, None,  # type: ignore[arg-type]
                        serve)
        reply = booted.exchange(client)
        booted.address = reply["address"]
        lab.run(client, ["ip", "addr", "add", f"{booted.address}/24", "dev", interfaces[client]])
        script_path = reply["file"].split(":8080/", 1)[1]
        status, script = booted.http(client, script_path)
        assert status == 200, script
        booted.spent = re.search(rb"clients/\S+/client\.img", script)[0].decode()
        status, part = booted.http(client, booted.spent)
        assert status == 200
        found = dict(zip(("username", "password"), (m.group(1).decode()
                                                     for m in SECRETS.finditer(part)),
                         strict=False))
        booted.username, booted.password = found["username"], found["password"]
        url = f"iscsi://{booted.username}%{booted.password}@{SERVER}:3260/{booted.target}/1"
        booted.session = lab.spawn(client, ["iscsi-perf", "-i", booted.initiator, "-t", "300",
                                            "-x", "3", url], tmp / "session.log")
        assert eventually(lambda: f"login: {booted.initiator}" in log.read_text(), 20), \
            "the client's session was not seen by serve"
        assert booted.http(client, f"report/{MAC}/root")[0] == 204
        yield booted
    finally:
        lab.close()


def private_names(booted: Booted) -> list[str]:
    return [f"clients/{MAC}/boot.ipxe", f"clients/{MAC}/client.img", booted.spent,
            f"pxelinux.cfg/01-{MAC.replace(':', '-')}"]


def test_an_unprivileged_user_on_the_booted_client_gets_403_for_every_private_file(booted):
    for name in private_names(booted):
        status, body = booted.http(booted.client, name, user=NOBODY)
        assert status == 403, name
        assert booted.password.encode() not in body


def test_an_unprivileged_user_cannot_open_a_window_without_port_68(booted):
    done = booted.lab.run(booted.client, [*NOBODY, sys.executable, "-m",
                                          "tests.support.boot_exchange",
                                          booted.interfaces[booted.client], MAC],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode != 0 and "Permission denied" in done.stderr


def test_a_host_that_takes_the_clients_address_gets_nothing(booted):
    booted.lab.run(booted.thief, ["ip", "addr", "add", f"{booted.address}/24", "dev",
                                  booted.interfaces[booted.thief]])
    try:
        for name in private_names(booted):
            status, body = booted.http(booted.thief, name)
            assert status == 403, name
            assert booted.password.encode() not in body
    finally:
        booted.lab.run(booted.thief, ["ip", "addr", "del", f"{booted.address}/24", "dev",
                                      booted.interfaces[booted.thief]])


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def network_part(booted: Booted) -> int:
    """The pid of serve's network part: the child of its root part that says so in argv."""
    assert booted.serve is not None
    children = Path(f"/proc/{booted.serve.pid}/task/{booted.serve.pid}/children").read_text()
    for pid in map(int, children.split()):
        for child in [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
            if b"--network-part" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    raise AssertionError("no network part among serve's children")


def test_dhcp_tftp_and_http_run_as_the_netboot_user_with_three_capabilities(booted):
    assert booted.serve is not None
    root, network = status_of(booted.serve.pid), status_of(network_part(booted))
    assert root["Uid"].split()[0] == "0"
    assert network["Uid"].split() == [str(pwd.getpwnam(SERVICE_USER).pw_uid)] * 4
    # CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13); nothing else, ever
    assert int(network["CapEff"], 16) == int(network["CapBnd"], 16) == (1 << 10) | (1 << 12) \
        | (1 << 13)
    listening = booted.lab.run(booted.server, ["ss", "-lntupH"]).stdout
    for port in (":67 ", ":69 ", ":8080 "):  # held by the network part or its TFTP workers
        owners = {int(pid) for line in listening.splitlines() if port in line
                  for pid in re.findall(r"pid=(\d+)", line)}
        assert owners and all(status_of(pid)["Uid"] == network["Uid"] for pid in owners), port


def test_opening_a_window_for_a_running_client_ends_its_session_and_its_secret(booted):
    """Late in the module: it ends the client's session."""
    assert booted.logs_in(booted.thief, booted.password).returncode == 0  # stolen, it works
    reply = booted.exchange(booted.thief)
    assert reply["file"].endswith("/boot.ipxe") and "/clients/" in reply["file"]
    assert eventually(lambda: "session(s) open" in booted.log.read_text(), 20), \
        "no warning about the running client's session"
    assert booted.session.wait(timeout=60) != 0  # dropped, and its re-login is refused
    refused = booted.logs_in(booted.thief, booted.password)
    assert refused.returncode != 0 and "Authentication failure" in refused.stderr
    line = next(x for x in booted.log.read_text().splitlines() if "session(s) open" in x)
    assert MAC in line and "WARNING" in line


def test_a_network_part_that_dies_stops_serve_with_a_line_naming_it(booted):
    """Last in the module: it ends serve. Its TFTP workers, orphaned, stop too."""
    assert booted.serve is not None
    part = network_part(booted)
    workers = [int(p) for p in Path(f"/proc/{part}/task/{part}/children").read_text().split()]
    os.kill(part, signal.SIGKILL)
    assert booted.serve.wait(timeout=30) == 1
    # serve's last line; the orphaned TFTP workers may still log their own stop after it
    last = [x for x in booted.log.read_text().splitlines() if "tftp." not in x][-1]
    assert "the network part" in last
    assert workers and eventually(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 10)
