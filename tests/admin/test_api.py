"""The admin API's routes on a real inventory, without sockets; every answer checked
against the OpenAPI file."""

import json
from http import HTTPStatus
from importlib import resources

import pytest
import yaml

from netboot.admin.api import Context, Request, Router
from netboot.admin.metrics import Sources
from netboot.cli.params import MAC
from netboot.inventory.stages import Stage
from netboot.inventory.store import open_inventory
from netboot.provisioning.clients import add_client
from tests.support.openapi import check_answer

BASE = "http://127.0.0.1:9180"
TOKEN = "t0ken"


@pytest.fixture
def config(make_config):
    return make_config("target:\n  manage: false\n")


@pytest.fixture
def router(config):
    with open_inventory(config) as inventory:
        add_client(config, inventory, "52:54:00:00:00:01", hostname="web1")
        inventory.record_stage("52:54:00:00:00:01", Stage.DHCP, at=1000.0)
        inventory.record_stage("52:54:00:00:00:01", Stage.ROOT, at=1012.5)
    return Router(Context(config, lambda: open_inventory(config), TOKEN,
                          Sources(lambda: [], lambda: open_inventory(config))))


def ask(router, method, path, body=None, peer="127.0.0.1", authorization=None):
    path, _, query = path.partition("?")
    raw = json.dumps(body).encode() if body is not None else b""
    response = router.handle(Request(method, path, query, peer, authorization, raw))
    if path.startswith("/api/v1/") and not path.endswith(".yaml"):
        check_answer(method, f"{BASE}{path}" + (f"?{query}" if query else ""),
                     response.status, response.body, request_body=raw or None)
    return response


def test_clients_are_listed_with_their_secrets_masked(router):
    response = ask(router, "GET", "/api/v1/clients")
    [client] = json.loads(response.body)
    assert client["hostname"] == "web1" and set(client["chap_secret"]) == {"*"}


def test_one_client_is_shown_with_its_luns_and_portal(router):
    response = ask(router, "GET", "/api/v1/clients/52-54-00-00-00-01")
    data = json.loads(response.body)
    assert data["mac"] == "52:54:00:00:00:01" and data["extra_luns"] == []


def test_a_missing_client_is_404(router):
    assert ask(router, "GET", "/api/v1/clients/52:54:00:00:00:09").status == 404


def test_status_shows_each_clients_last_boot_to_scale(router):
    data = json.loads(ask(router, "GET", "/api/v1/status").body)
    [client] = data["clients"]
    assert client["stage"] == "root"
    assert [(s["stage"], s["seconds"]) for s in client["boots"][-1]["stages"]] == [
        ("dhcp", 0.0), ("root", 12.5)]


def test_images_are_listed(router):
    assert json.loads(ask(router, "GET", "/api/v1/images").body) == []


def test_a_client_is_added_as_the_cli_adds_it(router, config):
    response = ask(router, "POST", "/api/v1/clients",
                   {"mac": "52:54:00:00:00:02", "hostname": "web2", "size": "64M"})
    assert response.status == HTTPStatus.CREATED
    with open_inventory(config) as inventory:
        assert inventory.get("52:54:00:00:00:02").lun_size == 64 << 20


def test_a_bad_mac_gets_the_clis_message_and_400(router):
    response = ask(router, "POST", "/api/v1/clients", {"mac": "52:54:00:zz:00:02"})
    assert response.status == HTTPStatus.BAD_REQUEST
    with pytest.raises(Exception) as cli_error:
        MAC.convert("52:54:00:zz:00:02", None, None)
    assert json.loads(response.body)["error"] in str(cli_error.value)


def test_a_duplicate_hostname_is_409(router):
    response = ask(router, "POST", "/api/v1/clients",
                   {"mac": "52:54:00:00:00:03", "hostname": "web1"})
    assert response.status == HTTPStatus.CONFLICT and "web1" in json.loads(response.body)["error"]


def test_an_unknown_field_is_named(router):
    response = router.handle(Request("POST", "/api/v1/clients", "", "127.0.0.1", None,
                                     b'{"mac": "52:54:00:00:00:04", "colour": "red"}'))
    assert response.status == 400 and "colour" in json.loads(response.body)["error"]


def test_a_client_is_removed_and_its_record_returned(router, config):
    response = ask(router, "DELETE", "/api/v1/clients/52:54:00:00:00:01?purge=true")
    assert json.loads(response.body)["hostname"] == "web1"
    with open_inventory(config) as inventory:
        assert inventory.clients() == []


def test_another_address_without_the_token_gets_401(router):
    response = router.handle(Request("GET", "/api/v1/clients", "", "198.18.0.9"))
    assert response.status == HTTPStatus.UNAUTHORIZED
    assert ("WWW-Authenticate", 'Bearer realm="netboot"') in response.headers


def test_another_address_with_the_token_is_answered(router):
    response = router.handle(Request("GET", "/metrics", "", "198.18.0.9", f"Bearer {TOKEN}"))
    assert response.status == HTTPStatus.OK


def test_the_page_and_its_assets_are_served_from_the_package(router):
    assert b"netboot fleet" in router.handle(Request("GET", "/", "", "198.18.0.9")).body
    assert router.handle(Request("GET", "/static/app.js", "", "198.18.0.9")).status == 200


def test_a_path_outside_the_pages_files_is_404(router):
    response = router.handle(Request("GET", "/static/../api.py", "", "127.0.0.1"))
    assert response.status == HTTPStatus.NOT_FOUND


def test_the_openapi_file_is_served(router):
    response = router.handle(Request("GET", "/api/v1/openapi.yaml", "", "127.0.0.1"))
    assert response.body.startswith(b"openapi: 3.0")


def test_the_openapi_files_stages_are_the_inventorys():
    """The OpenAPI file names the stages again (a document, not code): kept equal here."""
    schemas = yaml.safe_load(
        resources.files("netboot.admin").joinpath("openapi.yaml").read_text())[
            "components"]["schemas"]
    assert schemas["Stage"]["enum"] == [s.value for s in Stage]
    assert schemas["LastStage"]["enum"] == [*(s.value for s in Stage), None]
