"""Every DHCP offer an iPXE DISCOVER draws on a VLAN, for wire tests with two servers:
``offers.py IFACE MAC``, run as root inside a namespace (it binds port 68).

Prints a JSON list of the offers seen in 3 s: each one's server identifier,
offered address and boot file name.
"""

from __future__ import annotations

import json
import sys

from tests.support.boot_exchange import BROADCAST_FLAG
from tests.support.dhcp_frames import ipxe_bios, options
from tests.support.pxe_client import client_socket, collect

WAIT = 3.0  # seconds to collect offers: both servers answer within milliseconds


def main(interface: str, mac: str) -> None:
    sock = client_socket(interface)
    xid = 0x0FFE125
    sock.sendto(ipxe_bios(mac, xid=xid, flags=BROADCAST_FLAG), ("255.255.255.255", 67))
    offers = [o for o in collect(sock, xid, WAIT) if options(o).get(53) == 2]
    print(json.dumps([{"server": options(o)[54], "address": o.yiaddr,
                       "file": options(o).get(67, b"").decode()} for o in offers]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
