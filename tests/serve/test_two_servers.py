"""Two `netboot serve` on one boot VLAN sharing a PostgreSQL inventory, over a wire: both
answer a registered client with its one address, an unknown machine gets an address from
each server's own part of the range (never one address twice), and with one server down a
newly registered client boots through the other alone."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.configfile import load_config
from netboot.inventory.store import open_inventory
from netboot.provisioning.clients import add_client
from tests.conftest import needs_root
from tests.support import REPO
from tests.support.netlab import Lab, write_config

pytestmark = [needs_root, pytest.mark.root]

SERVERS = {"a": ("198.18.0.1", "198.18.0.192", "198.18.0.223"),
           "b": ("198.18.0.2", "198.18.0.224", "198.18.0.254")}
CLIENT_MAC = "52:54:00:2a:00:01"
NEW_MAC = "52:54:00:2a:00:02"
UNKNOWN_MAC = "52:54:00:2a:00:99"


@dataclass
class Pair:
    lab: Lab
    namespaces: dict[str, str]  # a, b and the client "c"
    interfaces: dict[str, str]
    configs: dict[str, Path]
    serves: dict

    def in_client(self, module: str, mac: str) -> object:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        ns = self.namespaces["c"]
        done = self.lab.run(ns, [sys.executable, "-m", module, self.interfaces[ns], mac],
                            env=env, timeout=30)
        return json.loads(done.stdout)

    def http(self, url: str) -> tuple[int, bytes]:
        done = self.lab.run(self.namespaces["c"], ["curl", "-sS", "--max-time", "10", "-o",
                                                   "-", "-w", "\n%{http_code}", url],
                            check=False, text=False)
        body, _, code = done.stdout.rpartition(b"\n")
        return int(code or 0), body


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, postgres_server) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("two-servers")
    database = postgres_server.new_database()
    lab = Lab(tmp)
    try:
        namespaces = {role: lab.netns(role) for role in ("a", "b", "c")}
        interfaces = lab.switch((namespaces["a"], f"{SERVERS['a'][0]}/24", None),
                                (namespaces["b"], f"{SERVERS['b'][0]}/24", None),
                                (namespaces["c"], None, None))
        configs = {}
        for name, (address, start, end) in SERVERS.items():
            work = tmp / name
            work.mkdir()
            configs[name] = write_config(
                work / "netboot.yaml", interfaces[namespaces[name]], work, address=address,
                extra=(f"  range_start: {start}\n  range_end: {end}\n  unknown: boot\n"
                       f"inventory:\n  url: \"{postgres_server.url(database)}\"\n"
                       f"  password_file: {postgres_server.password_file}\n"))
            text = configs[name].read_text().replace(
                "server:\n", f"server:\n  name: boot-{name}\n  user: root\n", 1).replace(
                "target:\n", "target:\n  manage: false\n", 1)
            configs[name].write_text(text)
        config = load_config(configs["a"])
        with open_inventory(config) as inventory:
            add_client(config, inventory, CLIENT_MAC)
        serves = {name: lab.serve(namespaces[name], path, tmp / f"serve-{name}.log")
                  for name, path in configs.items()}
        yield Pair(lab, namespaces, {ns: interfaces[ns] for ns in namespaces.values()},
                   configs, serves)
    finally:
        lab.close()
        postgres_server.drop_database(database)


def test_both_servers_offer_a_registered_client_its_one_address(pair: Pair) -> None:
    offers = pair.in_client("tests.support.offers", CLIENT_MAC)
    assert {o["server"] for o in offers} == {SERVERS["a"][0], SERVERS["b"][0]}
    with open_inventory(load_config(pair.configs["a"])) as inventory:
        registered = inventory.get(CLIENT_MAC)
    assert {o["address"] for o in offers} == {str(registered.ip)}


def test_an_unknown_machine_is_offered_one_address_from_each_servers_own_range(
        pair: Pair) -> None:
    offers = pair.in_client("tests.support.offers", UNKNOWN_MAC)
    by_server = {o["server"]: IPv4Address(o["address"]) for o in offers}
    assert set(by_server) == {SERVERS["a"][0], SERVERS["b"][0]}
    for address, start, end in SERVERS.values():
        assert IPv4Address(start) <= by_server[address] <= IPv4Address(end)


def test_with_one_server_down_a_new_client_boots_through_the_other(pair: Pair) -> None:
    assert pair.lab.stop(pair.serves["a"]) == 0
    config = load_config(pair.configs["b"])
    with open_inventory(config) as inventory:
        added = add_client(config, inventory, NEW_MAC).client
    reply = pair.in_client("tests.support.boot_exchange", NEW_MAC)
    assert reply["address"] == str(added.ip)
    client_ns = pair.namespaces["c"]
    pair.lab.run(client_ns, ["ip", "addr", "add", f"{added.ip}/24", "dev",
                             pair.interfaces[client_ns]])
    assert reply["file"].startswith(f"http://{SERVERS['b'][0]}:8080/")
    status, script = pair.http(reply["file"])
    assert status == 200, script
    part = re.search(rb"http://\S+/clients/\S+/client\.img", script)
    assert part is not None, script
    assert part[0].startswith(f"http://{SERVERS['b'][0]}:8080/".encode())
    assert pair.http(part[0].decode())[0] == 200
