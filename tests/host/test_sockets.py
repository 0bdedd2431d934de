"""A server's well-known socket holds a boot storm's requests (its receive buffer); sockets
sharing a port take requests by client address."""

from __future__ import annotations

import socket

import pytest

from netboot.dhcp.service import open_dhcp_socket
from netboot.host.sockets import REQUEST_BUFFER, steer_by_source
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


def test_steered_sockets_take_all_of_one_client_address_on_one_socket():
    group = []
    try:
        for _ in range(2):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", group[0].getsockname()[1] if group else 0))
            sock.settimeout(0.2)
            group.append(sock)
        steer_by_source(group[0], 2)
        sources = [f"127.0.0.{n}" for n in range(2, 6)]
        for source in sources:
            for _ in range(8):  # from 8 ports each: the kernel's own hash would spread them
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.bind((source, 0))
                    client.sendto(b"x", group[0].getsockname())
        seen = []
        for sock in group:
            got = set()
            try:
                while True:
                    got.add(sock.recvfrom(16)[1][0])
            except TimeoutError:
                seen.append(got)
        assert seen[0] | seen[1] == set(sources)
        assert not seen[0] & seen[1]
        assert seen[0] and seen[1]  # consecutive addresses alternate
    finally:
        for sock in group:
            sock.close()
