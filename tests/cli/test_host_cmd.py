"""`netboot host` and `netboot lun` for SAN hosts, as a user runs them (no tgtd: the target
is pending). The ``initialised`` fixture is in conftest.py."""

import json

IQN = "iqn.2026-11.org.example:db1"


def test_host_add_without_tgtd_says_the_target_is_pending(initialised):
    out = initialised("host", "add", "db1", "--iqn", IQN).stdout
    assert "target: pending: no tgtd answers" in out


def test_host_name_spelled_as_a_mac_is_a_usage_error(initialised):
    err = initialised("host", "add", "aabbccddeeff", "--iqn", IQN, expect=2).stderr
    assert "spelled as a MAC address" in err


def test_host_list_json_has_the_host_and_its_lun_count(initialised, tmp_path):
    initialised("host", "add", "db1", "--iqn", IQN)
    initialised("lun", "add", "db1", "--file", str(tmp_path / "d.raw"), "--size", "8M")
    (record,) = json.loads(initialised("host", "list", "--json").stdout)
    assert (record["name"], record["initiator_iqn"], record["luns"]) == ("db1", IQN, 1)
    assert set(record["chap_secret"]) == {"*"}


def test_host_show_masks_secrets_unless_asked(initialised):
    initialised("host", "add", "db1", "--iqn", IQN)
    masked = json.loads(initialised("host", "show", "db1", "--json").stdout)
    assert set(masked["chap_secret"]) == {"*"} and set(masked["mutual_secret"]) == {"*"}
    shown = json.loads(initialised("host", "show", "db1", "--json", "--show-secrets").stdout)
    assert len(shown["chap_secret"]) == 16
    assert shown["chap_secret"] not in initialised("host", "show", "db1").stdout


def test_host_secrets_never_reach_the_log(initialised, tmp_path):
    added = initialised("--log-format", "json", "--log-level", "debug", "host", "add", "db1",
                        "--iqn", IQN)
    lun = initialised("--log-format", "json", "--log-level", "debug", "lun", "add", "db1",
                      "--file", str(tmp_path / "d.raw"), "--size", "8M")
    shown = json.loads(initialised("host", "show", "db1", "--json", "--show-secrets").stdout)
    for proc in (added, lun):
        for secret in (shown["chap_secret"], shown["mutual_secret"]):
            assert secret not in proc.stderr


def test_host_luns_are_numbered_from_1(initialised, tmp_path):
    initialised("host", "add", "db1", "--iqn", IQN)
    out = initialised("lun", "add", "db1", "--file", str(tmp_path / "d.raw"), "--size", "8M")
    assert out.stdout.startswith("LUN 1 of ") and ":target:db1: file " in out.stdout
    rows = json.loads(initialised("lun", "list", "db1", "--json").stdout)
    assert [(r["lun"], r["kind"]) for r in rows] == [(1, "file")]


def test_lun_add_for_a_name_no_host_has_names_it(initialised, tmp_path):
    err = initialised("lun", "add", "db9", "--file", str(tmp_path / "d.raw"), "--size", "8M",
                      expect=1).stderr
    assert "no SAN host named db9 (and 'db9' is not a MAC address, so no client)" in err
    assert not (tmp_path / "d.raw").exists()


def test_lun_add_for_a_text_that_is_neither_mac_nor_name_is_a_usage_error(initialised):
    err = initialised("lun", "add", "db_9", "--file", "x", expect=2).stderr
    assert "'db_9' is neither a client's MAC address nor a SAN host's name" in err


def test_lun_add_for_a_multicast_mac_is_still_refused_as_a_mac(initialised):
    err = initialised("lun", "add", "01:00:5e:00:00:01", "--file", "x", expect=2).stderr
    assert "is a multicast MAC address" in err


def test_host_remove_keeps_its_lun_files_and_says_where(initialised, tmp_path):
    data = tmp_path / "d.raw"
    initialised("host", "add", "db1", "--iqn", IQN)
    initialised("lun", "add", "db1", "--file", str(data), "--size", "8M")
    out = initialised("host", "remove", "db1").stdout
    assert f"LUN 1: data kept in {data}" in out
    assert data.is_file()
    assert "no SAN host named db1" in initialised("host", "show", "db1", expect=1).stderr
