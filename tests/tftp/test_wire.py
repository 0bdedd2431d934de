"""netboot's TFTP server over loopback, with real clients (curl, tftp-hpa, atftp) and raw ones."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netboot.inventory.windows import BootFile
from netboot.tftp.options import MAX_TIMEOUT, Limits
from netboot.tftp.packets import (
    Error,
    ErrorCode,
    Opcode,
    encode_ack,
    encode_error,
    encode_request,
    parse,
)
from tests.support.bootserving import (
    MAC,
    SECRET,
    RawClient,
    Served,
    oack_options,
    sha256,
    start_served,
    stop_served,
)

BIG = 32 << 20
PXELINUX_CONFIG = "pxelinux.cfg/01-" + MAC.replace(":", "-")  # the sample client's


@pytest.fixture
def serve(make_config, tmp_path: Path):
    """Start the server with the given limits (once per test), its files in place."""
    running: list[Served] = []

    def start(limits: Limits, extra: str = "") -> Served:
        served = start_served(make_config(extra), limits=limits)
        running.append(served)
        (served.root / "big").write_bytes(os.urandom(BIG))
        (served.root / "small").write_bytes(os.urandom(5000))
        (tmp_path / "secret").write_text("outside the root\n")
        return served

    yield start
    for served in running:
        stop_served(served)


@pytest.fixture
def served(serve) -> Served:
    return serve(Limits(timeout=1.0, retries=2))


# Resends come every 0.5 s; an established transfer may resend 4 times, a silent peer twice.
PATIENT = Limits(timeout=0.5, retries=4)


def everything_sent(client: RawClient, first: bytes, quiet: float) -> list[bytes]:
    """``first`` and every datagram after it, until none comes for ``quiet`` seconds."""
    packets = [first]
    client.sock.settimeout(quiet)
    with contextlib.suppress(TimeoutError):
        while True:
            packets.append(client.receive())
    return packets


def wait_closed(served: Served) -> None:
    deadline = time.monotonic() + 2
    while served.tftp.sessions and time.monotonic() < deadline:  # closed just after the send
        time.sleep(0.01)
    assert not served.tftp.sessions


def curl_tftp(served: Served, name: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "60", *extra,
         f"tftp://127.0.0.1:{served.tftp.port}/{name}"],
        capture_output=True, check=False)


def error_of(data: bytes) -> Error:
    packet = parse(data)
    assert isinstance(packet, Error), packet
    return packet


@pytest.mark.parametrize("blksize", [512, 1468, 8192])
def test_curl_downloads_32_mib_intact_at_blksize(served: Served, blksize: int):
    result = curl_tftp(served, "big", "--tftp-blksize", str(blksize))
    assert result.returncode == 0, result.stderr
    assert sha256(result.stdout) == sha256((served.root / "big").read_bytes())


def test_tftp_hpa_downloads_intact(served: Served, tmp_path: Path):
    out = tmp_path / "got"
    result = subprocess.run(
        ["tftp", "-m", "binary", "127.0.0.1", str(served.tftp.port), "-c", "get", "big", str(out)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert sha256(out.read_bytes()) == sha256((served.root / "big").read_bytes())


def test_atftp_downloads_intact_with_blksize_and_tsize(served: Served, tmp_path: Path):
    out = tmp_path / "got"
    result = subprocess.run(
        ["atftp", "-g", "-r", "big", "-l", str(out), "--option", "blksize 1428",
         "--option", "tsize 0", "127.0.0.1", str(served.tftp.port)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert sha256(out.read_bytes()) == sha256((served.root / "big").read_bytes())


def test_eight_concurrent_curl_downloads_of_32_mib_all_match(served: Served):
    want = sha256((served.root / "big").read_bytes())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: curl_tftp(served, "big", "--tftp-blksize", "1468"),
                                range(8)))
    assert [r.returncode for r in results] == [0] * 8
    assert {sha256(r.stdout) for r in results} == {want}


@pytest.mark.parametrize("name", [
    "../secret", "a/../../secret", "./../secret", "/../secret", "..\\secret",
    "\\etc\\passwd", "small\\..\\..\\secret", "outlink", "outdir/secret",
])
def test_traversal_forms_get_access_violation(served: Served, tmp_path: Path, name: str):
    (served.root / "outlink").symlink_to(tmp_path / "secret")
    (served.root / "outdir").symlink_to(tmp_path)
    with RawClient(served.tftp.port) as client:
        assert error_of(client.request(name)).code == 2
    assert served.tftp.stats["denied"] == 1


def test_a_leading_slash_names_the_tftp_root_as_tftpd_hpa_secure_does(served: Served):
    with RawClient(served.tftp.port) as client:
        assert client.download("/small") == (served.root / "small").read_bytes()
    with RawClient(served.tftp.port) as client:
        assert error_of(client.request("/etc/passwd")).code == 1  # <root>/etc/passwd: none
    assert served.tftp.stats["not_found"] == 1


@pytest.mark.parametrize("name", ["%2e%2e/secret", "..%2fsecret", "%2e%2e%5csecret"])
def test_url_encoded_names_are_taken_literally_and_not_found(served: Served, name: str):
    with RawClient(served.tftp.port) as client:
        assert error_of(client.request(name)).code == 1


def test_a_nul_byte_ends_the_name_and_the_rest_is_refused(served: Served):
    with RawClient(served.tftp.port) as client:
        client.send_raw(b"\x00\x01small\x00../secret\x00octet\x00")
        assert error_of(client.receive()).code == 4  # a malformed request, nothing read
    assert served.tftp.stats["malformed"] == 1


def test_a_symlink_that_stays_inside_the_root_is_served(served: Served):
    (served.root / "inlink").symlink_to("small")
    with RawClient(served.tftp.port) as client:
        assert client.download("inlink") == (served.root / "small").read_bytes()


def test_unknown_file_gets_file_not_found(served: Served):
    with RawClient(served.tftp.port) as client:
        assert error_of(client.request("no-such-file")).code == 1
    assert served.tftp.stats["not_found"] == 1


def test_write_request_gets_access_violation_and_writes_nothing(served: Served):
    with RawClient(served.tftp.port) as client:
        assert error_of(client.request("upload", opcode=Opcode.WRQ)).code == 2
    assert not (served.root / "upload").exists()
    assert served.tftp.stats["write_refused"] == 1


def test_blksize_65536_is_lowered_to_65464_and_the_transfer_completes(served: Served):
    client = RawClient(served.tftp.port)
    try:
        first = client.request("small", {"blksize": "65536"})
        assert oack_options(first)["blksize"] == "65464"
        client.close()
        client = RawClient(served.tftp.port)
        assert client.download("big", {"blksize": "65536"}) == (served.root / "big").read_bytes()
    finally:
        client.close()


def test_blksize_below_8_gets_error_8(served: Served):
    with RawClient(served.tftp.port) as client:
        error = error_of(client.request("small", {"blksize": "4"}))
        assert (error.code, error.message) == (8, "blksize 4 is outside at least 8")
    assert served.tftp.stats["bad_options"] == 1


def test_tsize_and_timeout_are_answered_in_the_oack(served: Served):
    with RawClient(served.tftp.port) as client:
        options = oack_options(client.request("small", {"tsize": "0", "timeout": "3"}))
        assert options == {"tsize": "5000", "timeout": "3"}


def test_a_timeout_above_5_is_not_acknowledged_and_blocks_are_resent_after_5_s(
        served: Served):
    with RawClient(served.tftp.port, timeout=10) as client:
        first = client.request("small", {"timeout": "30"})
        assert first[:4] == b"\x00\x03\x00\x01"  # no OACK (RFC 2349 allows no other value): DATA 1
        began = time.monotonic()
        assert client.receive() == first
        assert 4.5 <= time.monotonic() - began < 9  # 5 s: not the client's 30, not our 1


def test_atftp_downloads_intact_when_its_timeout_is_not_acknowledged(served: Served,
                                                                    tmp_path: Path):
    out = tmp_path / "got"
    result = subprocess.run(
        ["atftp", "-g", "-r", "small", "-l", str(out), "--option", "timeout 30",
         "127.0.0.1", str(served.tftp.port)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (served.root / "small").read_bytes()


def test_windowsize_download_is_intact(served: Served):
    with RawClient(served.tftp.port) as client:
        data = client.download("big", {"blksize": "1428", "windowsize": "16"})
    assert sha256(data) == sha256((served.root / "big").read_bytes())


def test_a_packet_from_a_wrong_transfer_id_gets_error_5_and_is_not_processed(served: Served):
    client = RawClient(served.tftp.port)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.settimeout(5)
    try:
        first = client.request("small")
        assert first[:4] == b"\x00\x03\x00\x01"
        stranger.sendto(encode_ack(1), client.peer)  # would move the transfer on if processed
        assert error_of(stranger.recv(1000)).code == 5
        client.ack(1)
        assert client.receive()[:4] == b"\x00\x03\x00\x02"  # block 2 follows: nothing skipped
    finally:
        client.close()
        stranger.close()
    assert served.tftp.stats["wrong_tid"] == 1


def test_an_unacknowledged_block_is_sent_again_after_the_timeout(served: Served):
    with RawClient(served.tftp.port) as client:
        first = client.request("small")
        began = time.monotonic()
        again = client.receive()
        assert again == first
        assert time.monotonic() - began >= 0.9


def test_a_client_that_falls_silent_is_given_up_after_the_retries(serve):
    served = serve(PATIENT)
    with RawClient(served.tftp.port) as client:
        client.request("small")
        client.ack(1)
        packets = everything_sent(client, client.receive(), quiet=1.5)
    assert [p[:4] for p in packets[:-1]] == [b"\x00\x03\x00\x02"] * (1 + 4)  # 4 resends
    assert error_of(packets[-1]).message == "timed out"
    wait_closed(served)
    assert (served.tftp.stats["failed"], served.tftp.stats["unanswered"]) == (1, 0)


@pytest.mark.parametrize("options", [{}, {"tsize": "0"}])
def test_a_peer_that_never_answers_gets_the_first_packet_three_times_and_no_error(
        serve, options: dict[str, str]):
    served = serve(PATIENT)
    with RawClient(served.tftp.port) as client:
        first = client.request("small", options)
        packets = everything_sent(client, first, quiet=1.5)  # the last resends would be due
    assert packets == [first] * 3  # block 1 or the OACK: sent, resent twice, then dropped
    wait_closed(served)
    assert (served.tftp.stats["unanswered"], served.tftp.stats["failed"]) == (1, 0)


def test_a_malformed_datagram_is_counted_and_the_server_goes_on(served: Served):
    with RawClient(served.tftp.port) as client:
        client.send_raw(b"\x00")  # not even an opcode: dropped without an answer
        client.send_raw(b"\x00\x01\xff\xfe\x00octet\x00")  # a request: error 4 says why
        assert error_of(client.receive()).code == 4
        assert client.download("small") == (served.root / "small").read_bytes()
    assert served.tftp.stats["malformed"] == 2


def source(n: int) -> str:
    """The n-th of 62,500 loopback addresses: many clients, each within the cap per source."""
    return f"127.1.{n // 250}.{n % 250 + 1}"


def test_two_thousand_stalled_transfers_do_not_stop_a_new_download(serve):
    """Past 1,024 descriptors (tftpy's select() limit) and with every session stalled."""
    served = serve(Limits(timeout=1.0, retries=2, max_timeout=MAX_TIMEOUT))
    stalled = []
    try:
        for n in range(2000):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((source(n), 0))
            # timeout 30 (RFC 2349; the cap raised above): the sessions outlive the test
            # however slow the machine is
            sock.sendto(b"\x00\x01small\x00octet\x00timeout\x0030\x00",
                        ("127.0.0.1", served.tftp.port))
            stalled.append(sock)
        for sock in stalled:
            sock.settimeout(10)
            assert sock.recv(1000)[:2] == b"\x00\x06"  # the OACK, never acknowledged
        assert len(served.tftp.sessions) == 2000
        result = curl_tftp(served, "big", "--tftp-blksize", "8192")
        assert result.returncode == 0, result.stderr
        assert sha256(result.stdout) == sha256((served.root / "big").read_bytes())
    finally:
        for sock in stalled:
            sock.close()
    assert served.tftp.stats["internal_errors"] == 0


def test_a_ninth_transfer_from_one_address_gets_error_0_and_other_addresses_are_served(
        served: Served):
    held = [RawClient(served.tftp.port, bind="127.0.0.5") for _ in range(8)]
    extra = RawClient(served.tftp.port, bind="127.0.0.5")
    other = RawClient(served.tftp.port, bind="127.0.0.6")
    try:
        for client in held:
            assert client.request("small")[:4] == b"\x00\x03\x00\x01"
        error = error_of(extra.request("small"))
        assert (error.code, error.message) == (0, "too many transfers from your address")
        assert other.download("small") == (served.root / "small").read_bytes()
    finally:
        for client in (*held, extra, other):
            client.close()
    assert (served.tftp.stats["source_busy"], served.tftp.stats["busy"]) == (1, 0)


def test_past_the_global_cap_any_address_gets_server_busy(served: Served):
    served.tftp.max_sessions = 2
    clients = [RawClient(served.tftp.port, bind=f"127.0.0.{n}") for n in (5, 6, 7)]
    try:
        for client in clients[:2]:
            assert client.request("small")[:2] == b"\x00\x03"
        error = error_of(clients[2].request("small"))
        assert (error.code, error.message) == (0, "server busy, try again")
    finally:
        for client in clients:
            client.close()
    assert (served.tftp.stats["busy"], served.tftp.stats["source_busy"]) == (1, 0)


def test_a_transfer_that_ends_gives_its_address_a_place_again(served: Served):
    held = [RawClient(served.tftp.port, bind="127.0.0.5") for _ in range(8)]
    late = RawClient(served.tftp.port, bind="127.0.0.5")
    try:
        for client in held:
            client.request("small")
        held[0].sock.sendto(encode_error(ErrorCode.NOT_DEFINED, "cancelled"), held[0].peer)
        deadline = time.monotonic() + 2
        while len(served.tftp.sessions) > 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert late.download("small") == (served.root / "small").read_bytes()
    finally:
        for client in (*held, late):
            client.close()
    assert served.tftp.stats["source_busy"] == 0


def test_client_initrd_part_is_served_with_its_token(served: Served):
    token = served.open_window().tokens[BootFile.CLIENT_PART]
    result = curl_tftp(served, f"clients/{MAC}/{token}/client.img", "--interface", "127.0.0.2")
    assert result.returncode == 0, result.stderr
    assert SECRET.encode() in result.stdout


def test_client_initrd_part_without_a_token_gets_access_violation(served: Served, caplog):
    served.open_window()
    with RawClient(served.tftp.port, bind="127.0.0.2") as client:
        assert error_of(client.request(f"clients/{MAC}/client.img")).code == 2
    assert any("refused" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_client_initrd_part_without_tokens_is_refused_to_another_address(serve, caplog):
    served = serve(Limits(), "boot:\n  tokens: false\n")
    with RawClient(served.tftp.port, bind="127.0.0.3") as client:
        assert error_of(client.request(f"clients/{MAC}/client.img")).code == 2
    assert any("refused" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_pxelinux_config_is_served_once_in_the_window_and_records_the_loader_stage(serve):
    served = serve(Limits(), "boot:\n  loader: pxelinux\n")
    window = served.open_window()
    result = curl_tftp(served, PXELINUX_CONFIG, "--interface", "127.0.0.2")
    assert b"KERNEL vmlinuz" in result.stdout
    assert window.tokens[BootFile.CLIENT_PART].encode() in result.stdout
    assert served.stage_of(MAC) == "loader"
    assert curl_tftp(served, PXELINUX_CONFIG, "--interface", "127.0.0.2").stdout == b""


def test_a_request_waiting_for_its_window_holds_up_no_other_transfer(serve):
    served = serve(Limits(), "boot:\n  loader: pxelinux\n")
    window = served.open_window(ready=False)
    with (RawClient(served.tftp.port, bind="127.0.0.2") as waiting,
          RawClient(served.tftp.port, bind="127.0.0.3") as other):
        waiting.send_raw(encode_request(Opcode.RRQ, PXELINUX_CONFIG))
        assert other.download("small") == (served.root / "small").read_bytes()
        assert [s.value for s in served.tftp.samples() if s.name == "tftp_requests_waiting"] == [1]
        served.window_ready(window.boot_id)
        first = waiting.receive()
    assert first[:2] == b"\x00\x03" and b"KERNEL vmlinuz" in first


def test_a_request_whose_window_is_never_ready_is_refused_when_the_wait_ends(serve):
    served = serve(Limits(), "boot:\n  loader: pxelinux\n")
    served.tftp.ready_wait = 0.3
    served.open_window(ready=False)
    with RawClient(served.tftp.port, bind="127.0.0.2") as client:
        assert error_of(client.request(PXELINUX_CONFIG)).code == ErrorCode.ACCESS_VIOLATION
    assert served.tftp.stats["denied"] == 1


def test_resending_a_waiting_request_does_not_make_it_wait_longer(serve):
    served = serve(Limits(), "boot:\n  loader: pxelinux\n")
    served.tftp.ready_wait = 0.5
    served.open_window(ready=False)
    with RawClient(served.tftp.port, bind="127.0.0.2", timeout=0.1) as client:
        for _ in range(50):  # a resend every 0.1 s, for 5 s at most
            client.send_raw(encode_request(Opcode.RRQ, PXELINUX_CONFIG))
            with contextlib.suppress(TimeoutError):
                reply = client.receive()
                break
        else:
            pytest.fail("the request was never answered: each resend restarted its wait")
    assert error_of(reply).code == ErrorCode.ACCESS_VIOLATION


def test_kernel_fetch_over_tftp_records_the_kernel_stage(served: Served):
    result = curl_tftp(served, "vmlinuz", "--interface", "127.0.0.2")
    assert result.stdout == served.config.kernel_path.read_bytes()
    assert served.stage_of(MAC) == "kernel"


def test_two_thousand_concurrent_transfers_all_complete_intact(served: Served):
    want = (served.root / "small").read_bytes()
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytearray] = {}
    try:
        for n in range(2000):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((source(n), 0))
            sock.setblocking(False)
            sock.sendto(b"\x00\x01small\x00octet\x00", ("127.0.0.1", served.tftp.port))
            selector.register(sock, selectors.EVENT_READ)
            received[sock] = bytearray()
        done = 0
        deadline = time.monotonic() + 120
        while done < 2000 and time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                sock = key.fileobj
                data, peer = sock.recvfrom(1000)
                assert data[:2] == b"\x00\x03", parse(data)
                block = int.from_bytes(data[2:4], "big")
                if block == len(received[sock]) // 512 + 1:  # the next block, not a resend
                    received[sock] += data[4:]
                    if len(data) < 516:
                        selector.unregister(sock)
                        done += 1
                sock.sendto(encode_ack(block), peer)
        assert done == 2000
        assert all(bytes(data) == want for data in received.values())
    finally:
        selector.close()
        for sock in received:
            sock.close()
    assert served.tftp.stats["internal_errors"] == 0


def test_fetching_the_boot_loader_records_the_loader_stage(served: Served):
    (served.root / "undionly.kpxe").write_bytes(b"ipxe" * 100)
    result = curl_tftp(served, "undionly.kpxe", "--interface", "127.0.0.2")
    assert result.returncode == 0
    assert served.stage_of(MAC) == "loader"


def test_a_new_request_from_the_same_port_replaces_the_unfinished_transfer(served: Served):
    with RawClient(served.tftp.port) as client:
        first = client.request("big", {"tsize": "0"})  # asks the size, never acknowledges
        old_tid = client.peer
        assert oack_options(first)["tsize"] == str(BIG)
        assert client.download("small") == (served.root / "small").read_bytes()
        assert client.peer != old_tid
    assert served.tftp.stats["failed"] == 1


def test_a_netascii_request_is_refused_with_error_4_naming_octet(served: Served):
    with RawClient(served.tftp.port) as client:
        client.send_raw(b"\x00\x01small\x00netascii\x00")
        error = error_of(client.receive())
    assert error.code == 4 and "octet" in error.message
    assert served.tftp.stats["mode_refused"] == 1


def test_an_ack_to_the_request_port_gets_error_5_and_is_counted(served: Served):
    with RawClient(served.tftp.port) as client:
        client.send_raw(encode_ack(1))
        assert error_of(client.receive()).code == 5
    assert served.tftp.stats["wrong_tid"] == 1
