"""The `netboot` command as a user runs it: exit codes, messages, tables, JSON, masking.

The ``run`` and ``initialised`` fixtures are in conftest.py.
"""

import json
import time
from ipaddress import IPv4Address

from netboot.configfile import load_config
from netboot.inventory.servers import PortalRole, ServerRecord
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory

MAC = "52:54:00:aa:00:01"


def test_init_writes_a_config_that_checks(initialised):
    assert "OK" in initialised("config", "check").stdout
    text = initialised.config.read_text()
    assert "interface: nbtest0" in text and "address: 198.18.0.1" in text


def test_init_refuses_to_overwrite(initialised):
    err = initialised("init", "--interface", "x", "--subnet", "198.18.0.0/24", expect=1).stderr
    assert "already exists" in err


def test_config_check_names_file_line_and_key(run):
    run.config.write_text("server:\n  address: 198.18.0.1\n  htp_port: 80\n"
                          "dhcp:\n  subnet: 198.18.0.0/24\n")
    err = run("config", "check", expect=1).stderr
    assert f"{run.config}:3: server.htp_port: unknown key; did you mean 'http_port'?" in err


def test_config_show_prints_defaults(initialised):
    shown = json.loads(initialised("config", "show", "--json").stdout)
    assert shown["server"]["http_port"] == 8080
    assert shown["dhcp"]["range_start"] == "198.18.0.192"


def test_missing_config_is_one_clear_line(run):
    err = run("client", "list", expect=1).stderr
    assert err.startswith("Error: config file") and err.count("\n") == 1


def test_usage_error_exits_2(initialised):
    assert "Invalid value for 'MAC'" in initialised("client", "add", "zz", expect=2).stderr


def test_client_add_then_list_shows_a_table(initialised):
    initialised("client", "add", "AA-BB-CC-00-00-01", "--hostname", "web1")
    out = initialised("client", "list").stdout.splitlines()
    assert out[0].split() == ["MAC", "HOSTNAME", "IP", "IMAGE", "LUN", "SIZE", "STAGE", "LAST",
                              "SEEN"]
    assert out[1].split()[:3] == ["aa:bb:cc:00:00:01", "web1", "198.18.0.2"]


def test_client_add_without_tgtd_says_the_target_is_pending(initialised):
    out = initialised("client", "add", MAC).stdout
    assert "target: pending: no tgtd answers" in out


def test_client_show_masks_secrets_unless_asked(initialised):
    initialised("client", "add", MAC)
    masked = json.loads(initialised("client", "show", MAC, "--json").stdout)
    assert masked["chap_secret"] == "*" * 16
    shown = json.loads(initialised("client", "show", MAC, "--json", "--show-secrets").stdout)
    assert len(shown["chap_secret"]) == 16 and shown["chap_secret"] != "*" * 16
    assert shown["chap_secret"] not in initialised("client", "show", MAC).stdout


def test_secrets_never_reach_the_log(initialised):
    proc = initialised("--log-format", "json", "--log-level", "debug", "client", "add", MAC)
    secret = json.loads(initialised("client", "show", MAC, "--json", "--show-secrets")
                        .stdout)["chap_secret"]
    assert secret not in proc.stderr
    line = json.loads(proc.stderr.splitlines()[-1])
    assert line["mac"] == MAC


def test_client_list_json_is_a_list_of_records(initialised):
    initialised("client", "add", MAC)
    (record,) = json.loads(initialised("client", "list", "--json").stdout)
    assert record["mac"] == MAC and record["ip"] == "198.18.0.2"


def test_duplicate_add_is_one_clear_line_exit_1(initialised):
    initialised("client", "add", MAC)
    err = initialised("client", "add", MAC, expect=1).stderr
    assert err == f"Error: a client with MAC {MAC} is already registered\n"


def test_remove_then_show_is_not_found(initialised):
    initialised("client", "add", MAC)
    initialised("client", "remove", MAC)
    assert "no client with MAC" in initialised("client", "show", MAC, expect=1).stderr


def test_unknown_list_is_empty_table(initialised):
    assert initialised("client", "list", "--unknown").stdout.split()[0] == "MAC"


def test_status_shows_each_clients_last_stage(initialised, tmp_path):

    initialised("client", "add", MAC, "--hostname", "web1")
    with Inventory(load_config(initialised.config).storage.database) as inv:
        inv.record_stage(MAC, Stage.LOGIN)
    row = initialised("status").stdout.splitlines()[1].split()
    assert row[:6] == ["web1", MAC, "198.18.0.2", "-", "-", "login"]  # no image, none booted
    assert json.loads(initialised("status", "--json").stdout)["clients"][0]["stage"] == "login"


def test_status_and_client_show_name_the_servers_and_the_portal_holder(initialised):
    initialised("client", "add", MAC)
    config = load_config(initialised.config)
    now = time.time()
    start, end = config.dhcp.dynamic_range
    with Inventory(config.storage.database) as inv:
        inv.announce_server(ServerRecord("boot-a", config.server.address, start, end,
                                         PortalRole.HOLDER, now - 60, now))
        inv.announce_server(ServerRecord("boot-b", IPv4Address("198.18.0.3"), start, end,
                                         PortalRole.STANDBY, now - 60, now - 3600))
    status = json.loads(initialised("status", "--json").stdout)
    assert {s["name"]: s["state"] for s in status["servers"]} == {"boot-a": "running",
                                                                  "boot-b": "lost"}
    assert status["portal_holder"] == "boot-a"
    shown = json.loads(initialised("client", "show", MAC, "--json").stdout)
    assert shown["portal"]["held_by"] == "boot-a"
    lines = initialised("status").stdout.splitlines()
    assert next(ln for ln in lines if ln.startswith("boot-b")).split()[:4] == [
        "boot-b", "198.18.0.3", "lost", "standby"]


def test_server_forget_removes_a_lost_server_and_refuses_a_running_one(initialised):
    config = load_config(initialised.config)
    now = time.time()
    start, end = config.dhcp.dynamic_range
    with Inventory(config.storage.database) as inv:
        for name, seen in (("boot-a", now), ("boot-b", now - 3600)):
            inv.announce_server(ServerRecord(name, config.server.address, start, end,
                                             PortalRole.HOLDER, now - 7200, seen))
    assert "stop its serve first" in initialised("server", "forget", "boot-a", expect=1).stderr
    assert initialised("server", "forget", "boot-b").stdout.startswith("forgot server boot-b")
    assert [s["name"] for s in json.loads(initialised("status", "--json").stdout)["servers"]] \
        == ["boot-a"]
