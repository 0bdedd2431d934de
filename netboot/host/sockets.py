"""Aborting TCP connections of another process, in its network namespace.

tgt's ``--mode conn --op delete`` only marks a connection closing and waits
for an epoll event on its socket (``usr/iscsi/iscsi_tcp.c``
``iscsi_tcp_conn_force_close``). A peer that vanished mid-read (a machine
powered off) never sends one, and its queued answers keep the LUN busy for
as long as TCP retransmits (about 15 minutes). The kernel's socket destroy
(sock_diag, ``ss -K``, ``CONFIG_INET_DIAG_DESTROY``) resets such a
connection at once, which gives tgtd the event it waits for.
"""

from __future__ import annotations

from netboot.host.run import run


def abort_tcp(pid: int, local_port: int, peer: str) -> int:
    """Reset the established TCP connections between port ``local_port`` and ``peer`` (an
    address) in the network namespace of process ``pid``; how many there were."""
    out = run(["nsenter", f"--target={pid}", "--net", "ss", "-K", "-t", "-n", "-H",
               "state", "established", "sport", "=", f":{local_port}", "dst", peer],
              what=f"abort TCP connections from {peer} to port {local_port}")
    return len(out.splitlines())
