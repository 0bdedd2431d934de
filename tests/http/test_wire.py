"""netboot's HTTP server over loopback with curl: whole files, ranges, the per-client rule."""

from __future__ import annotations

import logging
import os
import subprocess
import threading

import pytest

from netboot.http.server import NOT_READY_RETRY, NOT_READY_WAIT
from netboot.inventory.windows import BootFile
from tests.support.bootserving import MAC, SECRET, Served, sha256, start_served, stop_served


@pytest.fixture
def served(make_config):
    running = start_served(make_config())
    (running.root / "undionly.kpxe").write_bytes(os.urandom(70_000))
    yield running
    stop_served(running)


@pytest.fixture
def by_address(make_config):
    """Served with ``boot.tokens: false``: private files go to the client's address."""
    running = start_served(make_config("boot:\n  tokens: false\n"))
    yield running
    stop_served(running)


def curl(served: Served, path: str, *extra: str, source: str = "127.0.0.1"):
    """(status, body) of GET path from address ``source``."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--interface", source, "-o", "-",
         "-w", "\n%{http_code}", *extra, served.http_url + path],
        capture_output=True, check=True)
    body, _, code = result.stdout.rpartition(b"\n")
    return int(code), body


def test_kernel_is_served_whole(served: Served):
    status, body = curl(served, "/boot/vmlinuz")
    assert (status, sha256(body)) == (200, sha256(served.config.kernel_path.read_bytes()))


def test_initramfs_is_served_whole(served: Served):
    status, body = curl(served, "/boot/initramfs.img")
    assert (status, body) == (200, served.config.initramfs_path.read_bytes())


def test_a_range_request_gets_206_and_those_bytes(served: Served):
    status, body = curl(served, "/boot/initramfs.img", "-r", "1000-1999")
    assert (status, body) == (206, served.config.initramfs_path.read_bytes()[1000:2000])


def test_a_suffix_range_gets_the_last_bytes(served: Served):
    status, body = curl(served, "/undionly.kpxe", "-H", "Range: bytes=-100")
    assert (status, body) == (206, (served.root / "undionly.kpxe").read_bytes()[-100:])


def test_a_range_past_the_end_gets_416(served: Served):
    status, _ = curl(served, "/undionly.kpxe", "-r", "70000-")
    assert status == 416


def test_tftp_root_files_are_served_at_their_path(served: Served):
    status, body = curl(served, "/undionly.kpxe")
    assert (status, body) == (200, (served.root / "undionly.kpxe").read_bytes())


def test_a_clients_files_are_served_once_each_with_the_tokens_of_its_window(served: Served):
    window = served.open_window()
    status, script = curl(served, f"/clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe",
                          source="127.0.0.2")
    assert status == 200
    part = f"/clients/{MAC}/{window.tokens[BootFile.CLIENT_PART]}/client.img"
    assert part.encode() in script
    status, body = curl(served, part, source="127.0.0.2")
    assert status == 200 and SECRET.encode() in body


def test_a_clients_files_without_a_token_get_403_from_its_own_address(served: Served):
    served.open_window()
    for name in ("boot.ipxe", "client.img"):
        status, body = curl(served, f"/clients/{MAC}/{name}", source="127.0.0.2")
        assert status == 403 and SECRET.encode() not in body


def test_a_spent_token_gets_403_and_a_warning_with_both_addresses(served: Served, caplog):
    part = f"/clients/{MAC}/{served.open_window().tokens[BootFile.CLIENT_PART]}/client.img"
    assert curl(served, part, source="127.0.0.2")[0] == 200
    with caplog.at_level(logging.WARNING):
        status, body = curl(served, part, source="127.0.0.3")
    assert status == 403 and SECRET.encode() not in body
    assert any("127.0.0.2" in r.getMessage() and "127.0.0.3" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_a_script_whose_window_is_still_prepared_gets_503_and_when_to_ask_again(served: Served):
    script = f"/clients/{MAC}/{served.open_window(ready=False).tokens[BootFile.SCRIPT]}/boot.ipxe"
    answer = subprocess.run(
        ["curl", "-sS", "--interface", "127.0.0.2", "-o", "/dev/null", "-w",
         "%{http_code} %header{retry-after}", served.http_url + script],
        capture_output=True, text=True, check=True).stdout
    assert answer == f"503 {NOT_READY_RETRY}"


def test_a_client_that_asks_again_as_told_gets_the_script_once_its_window_is_ready(
        served: Served):
    window = served.open_window(ready=False)
    preparing = threading.Timer(NOT_READY_WAIT + 1, served.window_ready, (window.boot_id,))
    preparing.start()
    try:  # curl --retry obeys Retry-After on a 503, as iPXE does
        status, body = curl(served, f"/clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe",
                            "--retry", "5", source="127.0.0.2")
    finally:
        preparing.join()
    assert status == 200 and body.endswith(b"|| reboot\n") and b"#!ipxe" in body


def test_a_head_request_does_not_spend_a_token(served: Served):
    script = f"/clients/{MAC}/{served.open_window().tokens[BootFile.SCRIPT]}/boot.ipxe"
    assert curl(served, script, "--head", source="127.0.0.2")[0] == 200
    assert curl(served, script, source="127.0.0.2")[0] == 200


def test_no_log_line_shows_an_unspent_token(served: Served, caplog):
    window = served.open_window()
    with caplog.at_level(logging.DEBUG):
        curl(served, f"/clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe",
             source="127.0.0.2")
        curl(served, f"/clients/{MAC}/{window.tokens[BootFile.SCRIPT]}/boot.ipxe",
             source="127.0.0.3")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "<token>" in logged
    assert window.tokens[BootFile.CLIENT_PART] not in logged


def test_the_root_report_closes_the_window(served: Served):
    part = f"/clients/{MAC}/{served.open_window().tokens[BootFile.CLIENT_PART]}/client.img"
    assert curl(served, f"/report/{MAC}/root", source="127.0.0.2")[0] == 204
    assert curl(served, part, source="127.0.0.2")[0] == 403


def test_without_tokens_a_clients_initrd_part_is_served_to_its_own_address(by_address):
    status, body = curl(by_address, f"/clients/{MAC}/client.img", source="127.0.0.2")
    assert status == 200 and SECRET.encode() in body


def test_without_tokens_a_clients_initrd_part_is_refused_to_another_address(by_address):
    status, body = curl(by_address, f"/clients/{MAC}/client.img", source="127.0.0.3")
    assert status == 403 and SECRET.encode() not in body


def test_without_tokens_a_clients_script_is_refused_to_another_address(by_address):
    status, _ = curl(by_address, f"/clients/{MAC}/boot.ipxe", source="127.0.0.3")
    assert status == 403


@pytest.mark.parametrize("path", ["/%2e%2e/secret", "/..%2fsecret", "/a/%2e%2e/%2e%2e/secret",
                                  "/%5c..%5csecret", "/x%00y"])
def test_encoded_traversal_is_refused(served: Served, path: str):
    status, _ = curl(served, path, "--path-as-is")
    assert status == 403


def test_an_unknown_path_gets_404(served: Served):
    assert curl(served, "/nothing-here")[0] == 404


def test_fetching_the_script_records_the_loader_stage(served: Served):
    script = f"/clients/{MAC}/{served.open_window().tokens[BootFile.SCRIPT]}/boot.ipxe"
    status, body = curl(served, script, source="127.0.0.2")
    assert status == 200 and body.startswith(b"#!ipxe")
    assert served.stage_of(MAC) == "loader"


def test_fetching_the_kernel_records_the_kernel_stage(served: Served):
    curl(served, "/boot/vmlinuz", source="127.0.0.2")
    assert served.stage_of(MAC) == "kernel"


def test_a_report_from_the_client_records_its_stage_and_gets_204(served: Served):
    status, _ = curl(served, f"/report/{MAC}/root", source="127.0.0.2")
    assert status == 204
    assert served.stage_of(MAC) == "root"


def test_a_report_with_detail_is_logged(served: Served, caplog):
    curl(served, f"/report/{MAC}/failed?detail=login%20refused", source="127.0.0.2")
    served.stages.flush()
    assert any("login refused" in r.getMessage() for r in caplog.records)


def test_a_report_from_another_address_is_refused(served: Served):
    status, _ = curl(served, f"/report/{MAC}/root", source="127.0.0.3")
    assert status == 403
    assert served.stage_of(MAC) is None


def test_a_report_of_an_unknown_stage_gets_404(served: Served):
    assert curl(served, f"/report/{MAC}/bogus", source="127.0.0.2")[0] == 404
