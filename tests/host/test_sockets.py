"""A server's well-known socket holds a boot storm's requests (its receive buffer)."""

from __future__ import annotations

import socket

import pytest

from netboot.dhcp.service import open_dhcp_socket
from netboot.host.sockets import REQUEST_BUFFER
from tests.conftest import needs_root


@pytest.mark.root
@needs_root
def test_the_dhcp_socket_queues_a_storm_past_the_kernels_default_buffer():
    sock = open_dhcp_socket("lo", 0)
    try:
        # the kernel reports twice what was set (its bookkeeping share)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= REQUEST_BUFFER
    finally:
        sock.close()
