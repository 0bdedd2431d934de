"""iPXE's DHCP exchange, for wire tests: ``boot_exchange.py IFACE MAC [--assign]``.

Run inside a namespace as root (it binds port 68). It sends what iPXE sends
(user class iPXE, option 175; scapy frames from tests/support/dhcp_frames.py)
with the broadcast flag set, takes the first offer, REQUESTs it and prints the
ACK's address and boot file name as JSON; ``--assign`` puts the address on IFACE.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.dhcp_frames import ipxe_bios, options
from tests.support.pxe_client import client_socket, collect

BROADCAST_FLAG = 0x8000


def main(interface: str, mac: str, assign: bool) -> None:
    sock = client_socket(interface)
    xid = 0x1BE5EED5
    sock.sendto(ipxe_bios(mac, xid=xid, flags=BROADCAST_FLAG), ("255.255.255.255", 67))
    offers = collect(sock, xid, 5.0, bool)
    result: dict = {}
    if offers:
        offer = offers[0]
        sock.sendto(ipxe_bios(mac, "request", xid=xid, flags=BROADCAST_FLAG, extra=[
            ("server_id", options(offer)[54]), ("requested_addr", offer.yiaddr)]),
            ("255.255.255.255", 67))
        acks = [a for a in collect(sock, xid, 5.0, bool) if options(a).get(53) == 5]
        if acks:
            result = {"address": acks[0].yiaddr, "file": options(acks[0])[67].decode()}
            if assign:
                subprocess.run(["ip", "addr", "add", f"{acks[0].yiaddr}/24", "dev", interface],
                               check=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--assign" in sys.argv[3:])
