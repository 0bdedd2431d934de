"""tgtd's management protocol: bytes against tgt's C layout and the real tgtadm, the client
against a scripted peer on a Unix socket (no tgtd, no root)."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netboot.target.model import TargetError, TargetUnreachable
from netboot.target.tgtmgmt import (
    ANSWER_SIZE,
    BODY_MAX,
    GLOBAL_TID,
    HEADER_SIZE,
    IPC_SOCKET_ENV,
    NO_LUN,
    Mode,
    Operation,
    Param,
    Request,
    Status,
    call,
    decode_response,
    encode_request,
    message,
    socket_path,
)

SECRET = "Secret0123456789"
PORT = 4321
# struct tgtadm_req by hand, natural alignment: two enums (int), char[64], u32 len, s32 tid,
# u64 sid (at 80, a multiple of 8: no padding), u64 lun, six u32; 120 bytes, a multiple of 8.
HEADER = struct.Struct("<ii64sIiQQIIIIII")


def answer(status: int, text: str = "") -> bytes:
    """A tgtd answer as usr/mgmt.c builds it: the text NUL-ended, ``len`` counting the header."""
    body = (text + "\0").encode() if text else b""
    return struct.pack("<II", status, ANSWER_SIZE + len(body)) + body


def test_header_follows_the_c_layout_of_struct_tgtadm_req():
    assert HEADER_SIZE == HEADER.size == struct.calcsize("@ii64sIiQQIIIIII") == 120
    assert ANSWER_SIZE == struct.calcsize("@II") == 8


def test_show_of_every_target_is_a_bare_header():
    data = encode_request(Request(Mode.TARGET, Operation.SHOW))
    assert data == HEADER.pack(Mode.TARGET, Operation.SHOW, b"iscsi", 120, -1, 0, NO_LUN,
                               0, 0, 0, 0, 0, 0)


def test_account_new_carries_user_then_password_nul_ended():
    request = Request(Mode.ACCOUNT, Operation.NEW, params=((Param.USER, "web1"),),
                      secret=SECRET)
    data = encode_request(request)
    body = f"user=web1,password={SECRET}\0".encode()
    assert data[HEADER.size:] == body
    assert HEADER.unpack(data[:HEADER.size])[3] == HEADER.size + len(body)


def test_params_are_written_in_tgtadms_order_whatever_order_they_are_given():
    request = Request(Mode.TARGET, Operation.NEW, tid=3, params=(
        (Param.USER, "u"), (Param.INITIATOR_NAME, "iqn.i"), (Param.TARGETNAME, "iqn.t"),
        (Param.PATH, "/lun")))
    assert encode_request(request)[HEADER.size:] == \
        b"path=/lun,targetname=iqn.t,initiator-name=iqn.i,user=u\0"


def test_outgoing_force_tid_and_lun_land_in_their_fields():
    fields = HEADER.unpack(encode_request(Request(
        Mode.DEVICE, Operation.DELETE, tid=7, lun=2, outgoing=True, force=True))[:HEADER.size])
    assert (fields[4], fields[6], fields[10], fields[12]) == (7, 2, 1, 1)


def test_secret_stays_out_of_the_requests_repr():
    request = Request(Mode.ACCOUNT, Operation.NEW, params=((Param.USER, "u"),), secret=SECRET)
    assert SECRET not in repr(request)


def test_body_longer_than_tgtd_takes_is_refused():
    with pytest.raises(ValueError, match=str(BODY_MAX)):
        encode_request(Request(Mode.TARGET, Operation.NEW, tid=1,
                               params=((Param.TARGETNAME, "x" * BODY_MAX),)))


def test_nul_in_a_parameter_is_refused():
    with pytest.raises(ValueError, match="NUL"):
        encode_request(Request(Mode.ACCOUNT, Operation.DELETE, params=((Param.USER, "a\0b"),)))


def test_answer_text_ends_at_its_nul():
    assert decode_response(answer(0, "Account list:\n    web1\n")).text == \
        "Account list:\n    web1\n"


def test_error_answer_has_its_code_and_no_text():
    decoded = decode_response(answer(Status.NO_USER))
    assert (decoded.status, decoded.text) == (Status.NO_USER, "")
    assert message(decoded.status) == "can't find the account"


def test_unknown_error_code_reads_as_tgtadm_prints_it():
    assert message(99) == "(unknown tgtadm_errno)"


def test_answer_shorter_than_announced_is_refused():
    with pytest.raises(ValueError, match="announces"):
        decode_response(answer(0, "Target 1: iqn.x\n")[:-3])


def test_answer_shorter_than_its_header_is_refused():
    with pytest.raises(ValueError, match="less than its header"):
        decode_response(b"\0\0\0")


# -- a scripted peer on the control socket ------------------------------------------


@dataclass
class Peer:
    """A listener on the control port's socket that records requests and sends set answers."""

    listener: socket.socket
    reply: Callable[[bytes], bytes | None]  # None: close without answering
    requests: list[bytes] = field(default_factory=list)

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(HEADER.size)
                if not data:
                    continue  # a probe: connected and went
                length = HEADER.unpack(data)[3]
                while len(data) < length:
                    data += conn.recv(length - len(data))
                self.requests.append(data)
                out = self.reply(data)
                if out is not None:
                    conn.sendall(out)

    def stop(self) -> None:
        """Stop listening: connections are refused from now on, as when tgtd has exited."""
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.fixture
def ipc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Control sockets under tmp_path, for this client and for tgtadm."""
    monkeypatch.setenv(IPC_SOCKET_ENV, str(tmp_path / "socket"))
    return socket_path(PORT)


@pytest.fixture
def peer(ipc: Path) -> Iterator[Callable[[Callable[[bytes], bytes | None]], Peer]]:
    started: list[Peer] = []

    def start(reply: Callable[[bytes], bytes | None]) -> Peer:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(ipc))
        listener.listen(8)
        made = Peer(listener, reply)
        threading.Thread(target=made.serve, daemon=True).start()
        started.append(made)
        return made

    yield start
    for made in started:
        if made.listener.fileno() != -1:
            made.stop()


# tgtadm command lines netboot's requests stand for, each with its request
SAME_AS_TGTADM = [
    (["--mode", "target", "--op", "show"], Request(Mode.TARGET, Operation.SHOW)),
    (["--mode", "account", "--op", "show"], Request(Mode.ACCOUNT, Operation.SHOW)),
    (["--mode", "system", "--op", "show"], Request(Mode.SYSTEM, Operation.SHOW)),
    (["--mode", "portal", "--op", "show"], Request(Mode.PORTAL, Operation.SHOW)),
    (["--mode", "target", "--op", "new", "--tid", "3", "--targetname", "iqn.2026-11.x:t"],
     Request(Mode.TARGET, Operation.NEW, tid=3, params=((Param.TARGETNAME, "iqn.2026-11.x:t"),))),
    (["--mode", "target", "--op", "delete", "--force", "--tid", "3"],
     Request(Mode.TARGET, Operation.DELETE, tid=3, force=True)),
    (["--mode", "target", "--op", "bind", "--tid", "3", "--initiator-name", "iqn.2026-11.x:i"],
     Request(Mode.TARGET, Operation.BIND, tid=3,
             params=((Param.INITIATOR_NAME, "iqn.2026-11.x:i"),))),
    (["--mode", "logicalunit", "--op", "new", "--tid", "3", "--lun", "1", "--backing-store",
      "/srv/luns/a.img"],
     Request(Mode.DEVICE, Operation.NEW, tid=3, lun=1, params=((Param.PATH, "/srv/luns/a.img"),))),
    (["--mode", "logicalunit", "--op", "delete", "--tid", "3", "--lun", "2"],
     Request(Mode.DEVICE, Operation.DELETE, tid=3, lun=2)),
    (["--mode", "account", "--op", "new", "--user", "web1", "--password", SECRET],
     Request(Mode.ACCOUNT, Operation.NEW, params=((Param.USER, "web1"),), secret=SECRET)),
    (["--mode", "account", "--op", "delete", "--user", "web1"],
     Request(Mode.ACCOUNT, Operation.DELETE, params=((Param.USER, "web1"),))),
    (["--mode", "account", "--op", "bind", "--tid", "3", "--user", "web1-t", "--outgoing"],
     Request(Mode.ACCOUNT, Operation.BIND, tid=3, params=((Param.USER, "web1-t"),),
             outgoing=True)),
    (["--mode", "account", "--op", "unbind", "--user", "web1"],
     Request(Mode.ACCOUNT, Operation.UNBIND, tid=GLOBAL_TID, params=((Param.USER, "web1"),))),
    (["--mode", "system", "--op", "delete", "--force"],
     Request(Mode.SYSTEM, Operation.DELETE, force=True)),
]


@pytest.mark.skipif(shutil.which("tgtadm") is None, reason="needs tgtadm (Debian package tgt)")
@pytest.mark.parametrize(("argv", "request_"), SAME_AS_TGTADM,
                         ids=[" ".join(a[1:4:2]) for a, _ in SAME_AS_TGTADM])
def test_request_bytes_are_those_tgtadm_sends(peer, argv: list[str], request_: Request):
    # tgtadm waits for tgtd to go after a system delete: an error answer lets it exit
    seen = peer(lambda _: answer(Status.INVALID_REQUEST))
    subprocess.run(["tgtadm", "-C", str(PORT), "--lld", "iscsi", *argv], capture_output=True,
                   timeout=10, check=False)
    assert seen.requests == [encode_request(request_)]


def test_call_returns_the_report_text(peer):
    peer(lambda _: answer(0, "Account list:\n    web1\n"))
    assert call(PORT, Request(Mode.ACCOUNT, Operation.SHOW), what="show account") == \
        "Account list:\n    web1\n"


def test_error_names_what_and_tgts_message_never_the_secret(peer):
    peer(lambda _: answer(Status.USER_EXIST))
    request = Request(Mode.ACCOUNT, Operation.NEW, params=((Param.USER, "web1"),),
                      secret=SECRET)
    with pytest.raises(TargetError) as raised:
        call(PORT, request, what="create account web1")
    assert str(raised.value) == "create account web1: this account already exists"
    assert not isinstance(raised.value, TargetUnreachable)


def test_no_socket_is_unreachable(ipc: Path):
    with pytest.raises(TargetUnreachable, match=f"no tgtd answers on control port {PORT}"):
        call(PORT, Request(Mode.SYSTEM, Operation.SHOW), what="show system")


def test_socket_nobody_listens_on_is_unreachable(ipc: Path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(ipc))  # bound, never listening: what a crashed tgtd leaves
        with pytest.raises(TargetUnreachable):
            call(PORT, Request(Mode.SYSTEM, Operation.SHOW), what="show system")


def test_peer_that_closes_without_answering_is_an_error(peer):
    peer(lambda _: None)
    with pytest.raises(TargetError, match="show system: tgtd closed the connection"):
        call(PORT, Request(Mode.SYSTEM, Operation.SHOW), what="show system")


def test_peer_that_never_answers_times_out(peer):
    release = threading.Event()
    peer(lambda _: release.wait(5) and None)
    try:
        with pytest.raises(TargetError, match="show target: tgtd did not answer within"):
            call(PORT, Request(Mode.TARGET, Operation.SHOW), what="show target", timeout=0.2)
    finally:
        release.set()


def test_system_delete_returns_once_tgtd_refuses_connections(peer):
    def stop(_: bytes) -> bytes:
        threading.Timer(0.3, made.stop).start()
        return answer(0)

    made = peer(stop)
    call(PORT, Request(Mode.SYSTEM, Operation.DELETE, force=True), what="stop tgtd")
    assert len(made.requests) == 1
    with pytest.raises(TargetUnreachable):
        call(PORT, Request(Mode.SYSTEM, Operation.SHOW), what="show system")
