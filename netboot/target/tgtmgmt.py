"""tgtd's management protocol, spoken directly: what ``tgtadm`` sends and reads, without ``tgtadm``.

A request is one connection to the control port's Unix socket: a fixed
header (``struct tgtadm_req``, ``usr/tgtadm.h``) whose ``len`` counts the
header and a text body of ``key=value`` parameters joined by commas and ended
by a NUL (``usr/tgtadm.c`` ``main``, ``usr/concat_buf.c``). tgtd answers with
``struct tgtadm_rsp`` (an error code and a length that counts itself) and,
for ``show``, the report text, NUL-terminated, then closes the connection
(``usr/mgmt.c`` ``mtask_recv_send_handler``). tgtd accepts only its own uid
(root) on the socket (``usr/mgmt.c`` ``ipc_perm``).

Speaking it from Python keeps CHAP secrets out of every process's argv
(``tgtadm --password`` puts them in ``/proc/PID/cmdline`` for any local user
to read) and saves a process per operation. Numbers, names and messages are
those of tgt 1.0.85 (Debian 12), unchanged up to 1.0.97.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path

from netboot.target.model import TargetError, TargetUnreachable

IPC_NAMESPACE = "/var/run/tgtd/socket"  # usr/tgtadm.h TGT_IPC_NAMESPACE
IPC_SOCKET_ENV = "TGT_IPC_SOCKET"  # usr/tgtadm.c ipc_mgmt_connect, usr/mgmt.c ipc_init
LLD_NAME_LEN = 64  # usr/tgtadm.h TGT_LLD_NAME_LEN
LLD_ISCSI = b"iscsi"  # the driver netboot uses (tgtadm --lld iscsi)
BODY_MAX = 8 * 1024  # usr/mgmt.c MAX_MGT_BUFSIZE: tgtd drops a request with a longer body
NO_TID = -1  # usr/tgtadm.c main(): tid when --tid is absent (show: every target)
GLOBAL_TID = -1  # usr/tgtadm.h GLOBAL_TID (~0U) in the int32 tid: the discovery target
NO_LUN = 2**64 - 1  # usr/tgtadm.c main(): lun = UINT64_MAX when --lun is absent
TYPE_DISK = 0  # usr/scsi.h TYPE_DISK, tgtadm's default --device-type
SHUTDOWN_POLL = 0.1  # usr/tgtadm.c ipc_mgmt_rsp: tgtadm re-connects every 100 ms after
                     # `--mode system --op delete` until tgtd refuses


class Mode(IntEnum):
    """``enum tgtadm_mode`` (``usr/tgtadm.h``); ``DEVICE`` is tgtadm's ``logicalunit``."""

    SYSTEM = 0
    TARGET = 1
    DEVICE = 2
    PORTAL = 3
    LLD = 4
    SESSION = 5
    CONNECTION = 6
    ACCOUNT = 7


class Operation(IntEnum):
    """``enum tgtadm_op`` (``usr/tgtadm.h``)."""

    NEW = 0
    DELETE = 1
    SHOW = 2
    BIND = 3
    UNBIND = 4
    UPDATE = 5
    STATS = 6
    START = 7
    STOP = 8


class AccountDirection(IntEnum):
    """``enum tgtadm_account_dir`` (``usr/tgtadm.h``): tgtadm's ``--outgoing`` or not."""

    INCOMING = 0
    OUTGOING = 1


class Status(IntEnum):
    """``enum tgtadm_errno`` (``usr/tgtadm_error.h``): the ``err`` of every answer."""

    SUCCESS = 0
    UNKNOWN_ERR = 1
    NOMEM = 2
    NO_DRIVER = 3
    NO_TARGET = 4
    NO_LUN = 5
    NO_SESSION = 6
    NO_CONNECTION = 7
    NO_BINDING = 8
    TARGET_EXIST = 9
    LUN_EXIST = 10
    BINDING_EXIST = 11
    ACL_EXIST = 12
    ACL_NOEXIST = 13
    USER_EXIST = 14
    NO_USER = 15
    TOO_MANY_USER = 16
    INVALID_REQUEST = 17
    OUTACCOUNT_EXIST = 18
    TARGET_ACTIVE = 19
    LUN_ACTIVE = 20
    DRIVER_ACTIVE = 21
    UNSUPPORTED_OPERATION = 22
    UNKNOWN_PARAM = 23
    PREVENT_REMOVAL = 24


# usr/tgtadm.c tgtadm_strerror: the text tgtadm prints for each code
MESSAGES = {
    Status.SUCCESS: "success",
    Status.UNKNOWN_ERR: "unknown error",
    Status.NOMEM: "out of memory",
    Status.NO_DRIVER: "can't find the driver",
    Status.NO_TARGET: "can't find the target",
    Status.NO_LUN: "can't find the logical unit",
    Status.NO_SESSION: "can't find the session",
    Status.NO_CONNECTION: "can't find the connection",
    Status.NO_BINDING: "can't find the binding",
    Status.TARGET_EXIST: "this target already exists",
    Status.BINDING_EXIST: "this binding already exists",
    Status.LUN_EXIST: "this logical unit number already exists",
    Status.ACL_EXIST: "this access control rule already exists",
    Status.ACL_NOEXIST: "this access control rule does not exist",
    Status.USER_EXIST: "this account already exists",
    Status.NO_USER: "can't find the account",
    Status.TOO_MANY_USER: "too many accounts",
    Status.INVALID_REQUEST: "invalid request",
    Status.OUTACCOUNT_EXIST: "this target already has an outgoing account",
    Status.TARGET_ACTIVE: "this target is still active",
    Status.LUN_ACTIVE: "this logical unit is still active",
    Status.DRIVER_ACTIVE: "this driver is busy",
    Status.UNSUPPORTED_OPERATION: "this operation isn't supported",
    Status.UNKNOWN_PARAM: "unknown parameter",
    Status.PREVENT_REMOVAL: "this device has Prevent Removal set",
}
UNKNOWN_STATUS = "(unknown tgtadm_errno)"  # usr/tgtadm.c tgtadm_strerror, any other code


class Param(Enum):
    """The body's keys netboot uses, in the order tgtadm writes them (``usr/tgtadm.c`` main)."""

    PATH = "path"  # --backing-store
    BSTYPE = "bstype"  # --bstype: the backing store module (rdwr for files, rbd for Ceph)
    BSOPTS = "bsopts"  # --bsopts: the module's options (bs_rbd: "conf=FILE;id=CLIENT")
    # a LUN's identity (VPD pages 0x80, 0x83); tgt's default derives it from tid and LUN, so
    # two tgtds exporting one image (a failover pair) would show two disks
    SCSI_ID = "scsi_id"
    SCSI_SN = "scsi_sn"
    # the LU refuses writes with DATA PROTECT / WRITE PROTECTED (usr/spc.c lu_config; tgt
    # reads it only in an update, not when the LU is made: usr/target.c tgt_device_create)
    READONLY = "readonly"
    TARGETNAME = "targetname"  # --targetname
    INITIATOR_NAME = "initiator-name"  # --initiator-name
    USER = "user"  # --user
    # "password" (--password) follows "user"; it is Request.secret, never a Param


_ORDER = {param: i for i, param in enumerate(Param)}
_PASSWORD = "password"


class _Header(ctypes.Structure):
    """``struct tgtadm_req`` (``usr/tgtadm.h``), laid out by ctypes with C's alignment rules."""

    _fields_ = [
        ("mode", ctypes.c_int),  # enum tgtadm_mode
        ("op", ctypes.c_int),  # enum tgtadm_op
        ("lld", ctypes.c_char * LLD_NAME_LEN),
        ("len", ctypes.c_uint32),  # header and body
        ("tid", ctypes.c_int32),
        ("sid", ctypes.c_uint64),
        ("lun", ctypes.c_uint64),
        ("cid", ctypes.c_uint32),
        ("host_no", ctypes.c_uint32),
        ("device_type", ctypes.c_uint32),
        ("ac_dir", ctypes.c_uint32),
        ("pack", ctypes.c_uint32),
        ("force", ctypes.c_uint32),
    ]


class _Answer(ctypes.Structure):
    """``struct tgtadm_rsp`` (``usr/tgtadm.h``)."""

    _fields_ = [
        ("err", ctypes.c_uint32),  # enum tgtadm_errno
        ("len", ctypes.c_uint32),  # this header and the text after it
    ]


HEADER_SIZE = ctypes.sizeof(_Header)
ANSWER_SIZE = ctypes.sizeof(_Answer)


@dataclass(frozen=True)
class Request:
    """One management request, as tgtadm would build it from its command line.

    ``secret`` is an account's password (``--password``): kept out of ``repr``,
    so a request can be logged; the bytes sent still carry it.
    """

    mode: Mode
    op: Operation
    tid: int = NO_TID
    lun: int = NO_LUN
    sid: int = 0  # a session's TSIH (--sid), for --mode conn
    cid: int = 0  # a connection id (--cid)
    params: tuple[tuple[Param, str], ...] = ()
    secret: str | None = field(default=None, repr=False)
    outgoing: bool = False
    force: bool = False


class TargetRefused(TargetError):
    """tgtd answered a request with an error code (``status``, an ``enum tgtadm_errno``)."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """tgtd's answer: its ``enum tgtadm_errno`` code and (for ``show``) the report text."""

    status: int
    text: str


def message(status: int) -> str:
    """What tgtadm prints for ``status`` (``usr/tgtadm.c`` ``tgtadm_strerror``)."""
    return MESSAGES.get(status, UNKNOWN_STATUS)  # IntEnum keys match plain ints


def _body(request: Request) -> bytes:
    """The text parameters, comma-joined in tgtadm's order and NUL-ended (none: empty)."""
    pairs = [(key.value, value) for key, value in sorted(request.params,
                                                         key=lambda kv: _ORDER[kv[0]])]
    if request.secret is not None:
        pairs.append((_PASSWORD, request.secret))
    text = ",".join(f"{key}={value}" for key, value in pairs)
    if "\0" in text:
        raise ValueError("a tgtd request parameter cannot hold a NUL byte")
    return (text + "\0").encode() if text else b""


def encode_request(request: Request) -> bytes:
    """The bytes tgtadm would write for ``request``: ``struct tgtadm_req`` and the body."""
    body = _body(request)
    if len(body) > BODY_MAX:
        raise ValueError(f"tgtd takes at most {BODY_MAX} bytes of parameters, "
                         f"not {len(body)}")
    header = _Header(
        mode=request.mode, op=request.op, lld=LLD_ISCSI, len=HEADER_SIZE + len(body),
        tid=request.tid, sid=request.sid, lun=request.lun, cid=request.cid,
        device_type=TYPE_DISK,
        ac_dir=AccountDirection.OUTGOING if request.outgoing else AccountDirection.INCOMING,
        force=int(request.force))
    return bytes(header) + body


def decode_response(data: bytes) -> Answer:
    """tgtd's whole answer (``struct tgtadm_rsp``, then ``len`` minus its size of text).

    Raises ValueError for an answer shorter than its header says.
    """
    if len(data) < ANSWER_SIZE:
        raise ValueError(f"tgtd's answer has {len(data)} bytes, less than its header")
    head = _Answer.from_buffer_copy(data[:ANSWER_SIZE])
    if head.len < ANSWER_SIZE or len(data) < head.len:
        raise ValueError(f"tgtd's answer announces {head.len} bytes and has {len(data)}")
    text = data[ANSWER_SIZE:head.len].split(b"\0", 1)[0]
    return Answer(head.err, text.decode(errors="replace"))


def socket_path(control_port: int) -> Path:
    """The control port's socket: ``$TGT_IPC_SOCKET`` or tgt's default, then ``.<port>``."""
    return Path(_address(control_port))


def _address(control_port: int) -> str:
    """:func:`socket_path` as the string connect() takes.

    Requests connect with it directly: a ``Path`` built for each of the
    thousands of requests of a large reconcile is Python time tgtd waits for.
    """
    return f"{os.environ.get(IPC_SOCKET_ENV) or IPC_NAMESPACE}.{control_port}"


def call(control_port: int, request: Request, *, what: str, timeout: float = 30.0) -> str:
    """Send ``request`` to the tgtd on ``control_port``; the report text, or a TargetError.

    Errors name ``what`` and tgt's message, never the request's parameters.
    After a successful ``--mode system --op delete`` this waits, as tgtadm
    does, until tgtd no longer accepts connections.
    """
    deadline = time.monotonic() + timeout
    with _connect(control_port, timeout) as conn:
        try:
            conn.sendall(encode_request(request))
            data = _read_to_end(conn)
        except TimeoutError:
            raise TargetError(f"{what}: tgtd did not answer within {timeout:.0f} s") from None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
    if not data:
        raise TargetError(f"{what}: tgtd closed the connection without answering")
    try:
        answer = decode_response(data)
    except ValueError as err:
        raise TargetError(f"{what}: {err}") from None
    if answer.status != Status.SUCCESS:
        raise TargetRefused(f"{what}: {message(answer.status)}", answer.status)
    if request.mode is Mode.SYSTEM and request.op is Operation.DELETE:
        _wait_closed(control_port, what, deadline)
    return answer.text


def _connect(control_port: int, timeout: float) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(_address(control_port))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        raise TargetUnreachable(f"no tgtd answers on control port {control_port}") from None
    except OSError as err:
        conn.close()
        raise TargetError(f"tgtd's control socket {_address(control_port)}: "
                          f"{err.strerror or err}") from None
    return conn


def _read_to_end(conn: socket.socket) -> bytes:
    """Everything tgtd sends: it closes the connection after its answer."""
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _wait_closed(control_port: int, what: str, deadline: float) -> None:
    """Until tgtd refuses connections (it is exiting), as tgtadm waits after a system delete."""
    while True:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(_address(control_port))
        except OSError as err:
            if err.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return
            raise TargetError(f"{what}: {err.strerror or err}") from None
        finally:
            probe.close()
        if time.monotonic() > deadline:
            raise TargetError(f"{what}: tgtd still accepts connections")
        time.sleep(SHUTDOWN_POLL)
