"""The `client`, `image` and `lun` commands end to end, against a real tgtd."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netboot.cli import cli
from netboot.config import Config
from netboot.target.tgtshow import parse_targets
from tests.conftest import needs_root
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    read_capacity,
    target_config,
    tgtadm,
    tgtd,
    tgtd_endpoint,
)

pytestmark = [needs_root, pytest.mark.root]
MAC = "52:54:00:00:00:41"


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.source), *args])


@pytest.fixture
def with_image(target_config: Config) -> Config:
    assert run(target_config, "image", "build", "builtin", "--builtin").exit_code == 0
    return target_config


def client_json(config: Config) -> dict:
    return json.loads(run(config, "client", "show", MAC, "--json", "--show-secrets").output)


def test_client_add_reports_the_clone_and_the_live_target(with_image: Config, tgtd: Tgtd) -> None:
    done = run(with_image, "client", "add", MAC, "--image", "builtin", "--size", "64M")
    assert done.exit_code == 0, done.output
    assert "root LUN: cloned from image builtin by sparse copy, 64M" in done.output
    assert "target: applied" in done.output
    client = client_json(with_image)
    login = read_capacity(tgtd, client["initiator_iqn"], client["chap_user"],
                          client["chap_secret"], client["target_iqn"])
    assert login.stdout.strip() == str(64 << 20)


def test_client_add_without_tgtd_says_the_target_is_pending(with_image: Config) -> None:
    done = run(with_image, "client", "add", MAC, "--image", "builtin")
    assert done.exit_code == 0, done.output
    assert "target: pending: no tgtd answers on control port" in done.output


def test_client_show_has_lun_size_image_and_bytes_used(with_image: Config, tgtd: Tgtd) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin", "--size", "64M")
    shown = run(with_image, "client", "show", MAC).output
    assert "image          builtin" in shown and "lun size       64M" in shown
    assert 0 < client_json(with_image)["lun_used"] < 64 << 20


def test_initiator_config_carries_iqn_and_secrets(with_image: Config, tgtd: Tgtd) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    client = client_json(with_image)
    text = run(with_image, "client", "show", MAC, "--initiator-config").output
    assert f"InitiatorName={client['initiator_iqn']}\n" in text
    assert f"node.session.auth.password = {client['chap_secret']}\n" in text
    assert f"node.session.auth.password_in = {client['mutual_secret']}\n" in text
    assert f"discovery.sendtargets.auth.password = {client['chap_secret']}\n" in text
    assert f"iscsiadm -m node -T {client['target_iqn']} -p {tgtd.url} --login" in text


def test_client_remove_keeps_data_and_says_where(with_image: Config, tgtd: Tgtd) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    lun = Path(client_json(with_image)["lun_path"])
    done = run(with_image, "client", "remove", MAC)
    assert f"its data is kept in {lun}" in done.output
    assert lun.is_file()


def test_client_remove_purge_deletes_the_root_lun(with_image: Config, tgtd: Tgtd) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    lun = Path(client_json(with_image)["lun_path"])
    assert run(with_image, "client", "remove", MAC, "--purge").exit_code == 0
    assert not lun.exists()


def test_lun_add_creates_a_sparse_file_served_as_lun_2(with_image: Config, tgtd: Tgtd,
                                                       tmp_path: Path) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    data = tmp_path / "data.raw"
    done = run(with_image, "lun", "add", MAC, "--file", str(data), "--size", "32M")
    assert done.exit_code == 0, done.output
    assert "LUN 2 of" in done.output and "target: applied" in done.output
    assert data.stat().st_size == 32 << 20 and data.stat().st_blocks == 0
    client = client_json(with_image)
    login = read_capacity(tgtd, client["initiator_iqn"], client["chap_user"],
                          client["chap_secret"], client["target_iqn"], 2)
    assert login.stdout.strip() == str(32 << 20)


def test_lun_list_shows_root_and_extra_luns(with_image: Config, tgtd: Tgtd,
                                            tmp_path: Path) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    run(with_image, "lun", "add", MAC, "--file", str(tmp_path / "d.raw"), "--size", "8M")
    rows = json.loads(run(with_image, "lun", "list", MAC, "--json").output)
    assert [(r["lun"], r["kind"]) for r in rows] == [(1, "root"), (2, "file")]


def test_lun_remove_takes_it_off_the_target_and_keeps_the_file(with_image: Config, tgtd: Tgtd,
                                                               tmp_path: Path) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    data = tmp_path / "d.raw"
    run(with_image, "lun", "add", MAC, "--file", str(data), "--size", "8M")
    assert run(with_image, "lun", "remove", MAC, "2").exit_code == 0
    client = client_json(with_image)
    login = read_capacity(tgtd, client["initiator_iqn"], client["chap_user"],
                          client["chap_secret"], client["target_iqn"], 2)
    assert login.returncode != 0
    assert data.is_file()


def test_lun_add_of_a_missing_file_needs_a_size(with_image: Config, tmp_path: Path) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    done = run(with_image, "lun", "add", MAC, "--file", str(tmp_path / "none.raw"))
    assert done.exit_code == 1
    assert "does not exist: give --size" in done.output


def test_image_remove_in_use_is_refused_with_the_clients(with_image: Config) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    done = run(with_image, "image", "remove", "builtin")
    assert done.exit_code == 1
    assert "node-525400000041" in done.output


def test_image_list_json_has_size_used_and_clients(with_image: Config) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    (image,) = json.loads(run(with_image, "image", "list", "--json").output)
    assert image["size"] == 32 << 20 and 0 < image["used"] < image["size"]
    assert image["clients"] == ["node-525400000041"]


def test_target_list_shows_the_clients_target(with_image: Config, tgtd: Tgtd) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    (found,) = json.loads(run(with_image, "target", "list", "--json").output)
    assert found["iqn"].endswith(":target:node-525400000041")
    assert found["incoming"] == ["node-525400000041"]


def test_target_reconcile_twice_reports_no_change(with_image: Config, tgtd: Tgtd) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    assert run(with_image, "target", "reconcile").output.endswith("0 change(s), 0 failure(s)\n")


def _change_secret_behind_netboot(tgtd: Tgtd, user: str) -> None:
    """A new password for ``user`` with raw tgtadm, bound again as before.

    It is the only account, so unbinding it (from its target, and from
    discovery by the delete) takes tgt's last slot: the safe case.
    """
    (tid,) = (t.tid for t in parse_targets(tgtadm(tgtd.control_port, "--mode", "target",
                                                  "--op", "show")))
    for args in (("--op", "unbind", "--tid", str(tid)), ("--op", "delete"),
                 ("--op", "new", "--password", "Z" * 16), ("--op", "bind", "--tid", str(tid)),
                 ("--op", "bind")):
        tgtadm(tgtd.control_port, "--mode", "account", *args, "--user", user)


@pytest.fixture
def secret_changed(with_image: Config, tgtd: Tgtd) -> dict:
    """A client whose CHAP secret on tgtd is no longer the one in the inventory."""
    run(with_image, "client", "add", MAC, "--image", "builtin")
    client = client_json(with_image)
    _change_secret_behind_netboot(tgtd, client["chap_user"])
    login = read_capacity(tgtd, client["initiator_iqn"], client["chap_user"],
                          client["chap_secret"], client["target_iqn"])
    assert "Authentication failure" in login.stderr
    return client


def test_target_reconcile_does_not_see_a_secret_changed_behind_netboot(
        with_image: Config, secret_changed: dict) -> None:
    assert run(with_image, "target", "reconcile").output.endswith("0 change(s), 0 failure(s)\n")


def test_target_reconcile_force_restores_a_secret_changed_behind_netboot(
        with_image: Config, tgtd: Tgtd, secret_changed: dict) -> None:
    done = run(with_image, "target", "reconcile", "--force")
    assert done.exit_code == 0, done.output
    client = secret_changed
    login = read_capacity(tgtd, client["initiator_iqn"], client["chap_user"],
                          client["chap_secret"], client["target_iqn"])
    assert login.stdout.strip() == str(client_json(with_image)["lun_size"]), login.stderr


def test_target_reconcile_after_force_reports_no_change(with_image: Config, tgtd: Tgtd) -> None:
    run(with_image, "client", "add", MAC, "--image", "builtin")
    assert run(with_image, "target", "reconcile", "--force").exit_code == 0
    assert run(with_image, "target", "reconcile").output.endswith("0 change(s), 0 failure(s)\n")


def test_target_stop_stops_tgtd(with_image: Config, tgtd: Tgtd) -> None:
    from netboot.target.tgtd import tgtd_pid

    assert run(with_image, "target", "stop", "--yes").output.endswith("tgtd stopped\n")
    assert tgtd_pid(tgtd.control_port) is None
