"""Socket plumbing the servers share: a receive buffer a boot storm fits in, one
client address per process on a shared port, and aborting TCP connections of
another process, in its network namespace.

A storm's requests arrive at once: the kernel's default receive buffer (about
270 datagrams) drops the rest before the server reads any. A buffer past
``net.core.rmem_max`` needs ``SO_RCVBUFFORCE`` (CAP_NET_ADMIN); without it the
kernel caps what is asked at that limit.

Sockets of several processes on one port (``SO_REUSEPORT``) get requests by a
hash of the whole 4-tuple, so one client's requests from different ports land
on different processes, and a per-address limit each process keeps would hold
only per process. A classic BPF program on the group picks the socket by the
client's address instead (``SO_ATTACH_REUSEPORT_CBPF``; the program sees the
UDP payload, the IP header at ``SKF_NET_OFF``): all of one address's
requests reach one process, and consecutive addresses alternate.

tgt's ``--mode conn --op delete`` only marks a connection closing and waits
for an epoll event on its socket (``usr/iscsi/iscsi_tcp.c``
``iscsi_tcp_conn_force_close``). A peer that vanished mid-read (a machine
powered off) never sends one, and its queued answers keep the LUN busy for
as long as TCP retransmits (about 15 minutes). The kernel's socket destroy
(sock_diag, ``ss -K``, ``CONFIG_INET_DIAG_DESTROY``) resets such a
connection at once, which gives tgtd the event it waits for.
"""

from __future__ import annotations

import ctypes
import socket
import struct

from netboot.host.run import run

SO_RCVBUFFORCE = 33  # Linux asm-generic/socket.h; Python's socket module does not name it
# Room for ~8,000 datagrams queued on a server's well-known port (the default holds ~270).
REQUEST_BUFFER = 8 << 20


def set_receive_buffer(sock: socket.socket, size: int = REQUEST_BUFFER) -> None:
    """Past net.core.rmem_max if we may (root): a boot storm's requests arrive at once."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


# linux/asm-generic/socket.h
SO_ATTACH_REUSEPORT_CBPF = 51
# Classic BPF (linux/bpf_common.h, linux/filter.h): one instruction is struct sock_filter
# (u16 code, u8 jt, u8 jf, u32 k); the program is struct sock_fprog (u16 len, pointer).
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_ALU_MOD_K = 0x04 | 0x90 | 0x00  # BPF_ALU | BPF_MOD | BPF_K
BPF_RET_A = 0x06 | 0x10  # BPF_RET | BPF_A
SKF_NET_OFF = -0x100000  # a load at SKF_NET_OFF + n reads the network header's byte n
SOCK_FILTER = struct.Struct("HBBI")
SOCK_FPROG = struct.Struct("HL")
# The last 32 bits of the source address: RFC 791 (IPv4 header, octets 12-15) and
# RFC 8200 (IPv6 header, source at 8-23).
SOURCE_WORD = {socket.AF_INET: 12, socket.AF_INET6: 20}


def steer_by_source(sock: socket.socket, count: int) -> None:
    """Make the ``count`` sockets of ``sock``'s SO_REUSEPORT group (the index is the order
    they were bound in) take requests by client address: its last 32 bits modulo
    ``count``. Before all ``count`` are bound the kernel falls back to its hash."""
    program = [(BPF_LD_W_ABS, 0, 0, (SKF_NET_OFF + SOURCE_WORD[sock.family]) & 0xFFFFFFFF),
               (BPF_ALU_MOD_K, 0, 0, count),
               (BPF_RET_A, 0, 0, 0)]
    code = ctypes.create_string_buffer(b"".join(SOCK_FILTER.pack(*i) for i in program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                    SOCK_FPROG.pack(len(program), ctypes.addressof(code)))


def abort_tcp(pid: int, local_port: int, peer: str) -> int:
    """Reset the established TCP connections between port ``local_port`` and ``peer`` (an
    address) in the network namespace of process ``pid``; how many there were."""
    out = run(["nsenter", f"--target={pid}", "--net", "ss", "-K", "-t", "-n", "-H",
               "state", "established", "sport", "=", f":{local_port}", "dst", peer],
              what=f"abort TCP connections from {peer} to port {local_port}")
    return len(out.splitlines())
