"""Socket plumbing the servers share: a receive buffer a boot storm fits in, and
aborting TCP connections of another process, in its network namespace.

A storm's requests arrive at once: the kernel's default receive buffer (about
270 datagrams) drops the rest before the server reads any. A buffer past
``net.core.rmem_max`` needs ``SO_RCVBUFFORCE`` (CAP_NET_ADMIN); without it the
kernel caps what is asked at that limit.

tgt's ``--mode conn --op delete`` only marks a connection closing and waits
for an epoll event on its socket (``usr/iscsi/iscsi_tcp.c``
``iscsi_tcp_conn_force_close``). A peer that vanished mid-read (a machine
powered off) never sends one, and its queued answers keep the LUN busy for
as long as TCP retransmits (about 15 minutes). The kernel's socket destroy
(sock_diag, ``ss -K``, ``CONFIG_INET_DIAG_DESTROY``) resets such a
connection at once, which gives tgtd the event it waits for.
"""

from __future__ import annotations

import socket

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


def abort_tcp(pid: int, local_port: int, peer: str) -> int:
    """Reset the established TCP connections between port ``local_port`` and ``peer`` (an
    address) in the network namespace of process ``pid``; how many there were."""
    out = run(["nsenter", f"--target={pid}", "--net", "ss", "-K", "-t", "-n", "-H",
               "state", "established", "sport", "=", f":{local_port}", "dst", peer],
              what=f"abort TCP connections from {peer} to port {local_port}")
    return len(out.splitlines())
