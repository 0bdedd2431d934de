"""tgtd's control ports: picking one nobody uses."""

from __future__ import annotations

from netboot.target.tgtd import CONTROL_PORT_MAX, free_control_port, lock_path
from netboot.target.tgtmgmt import socket_path


def test_free_control_port_has_no_socket_or_lock_and_fits_tgtd_short():
    port = free_control_port()
    assert 1000 <= port < CONTROL_PORT_MAX
    assert not lock_path(port).exists() and not socket_path(port).exists()
