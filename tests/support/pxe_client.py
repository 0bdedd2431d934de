"""A PXE ROM's DHCP exchange with a DHCP server and a proxyDHCP server, for wire tests.

Run inside a client namespace: ``pxe_client.py IFACE MAC``. It does what an
Intel PXE ROM does (PXE 2.1 section 2.2): broadcast a DISCOVER with vendor
class PXEClient, collect the offers for a while, take the address from the
offer that has one, REQUEST it, then ask the proxy (the offer with option 60
PXEClient and no address) for the boot file on port 4011. Prints JSON.
Packets are built by scapy (tests/dhcp_frames.py) and read by scapy.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from tests.support.dhcp_frames import decode, intel_rom, options


def collect(sock: socket.socket, xid: int, seconds: float, enough=lambda replies: False) -> list:
    """Replies with ``xid`` for up to ``seconds``, or until ``enough(replies)``."""
    replies, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and not enough(replies):
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(4096)
        except TimeoutError:
            break
        reply = decode(data)
        if reply.xid == xid:
            replies.append(reply)
    return replies


def client_socket(interface: str) -> socket.socket:
    """A DHCP client's socket: port 68 on ``interface``, allowed to broadcast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    sock.bind(("0.0.0.0", 68))
    return sock


def main(interface: str, mac: str) -> None:
    sock = client_socket(interface)
    xid = 0x1D0C5EED
    sock.sendto(intel_rom(mac, xid=xid, flags=0x8000), ("255.255.255.255", 67))
    # dnsmasq pings an address before offering it: its offer can take 3 s, as on a real LAN.
    offers = collect(sock, xid, 8.0, lambda got: len({o.yiaddr == "0.0.0.0" for o in got}) == 2)
    with_address = [o for o in offers if o.yiaddr != "0.0.0.0"]
    proxies = [o for o in offers if o.yiaddr == "0.0.0.0" and options(o).get(60) == b"PXEClient"]
    result: dict = {"offers": len(offers), "proxy_offers": len(proxies)}
    if proxies:
        result["proxy_offer_file"] = proxies[0].file.rstrip(b"\0").decode()
    if with_address:
        offer = with_address[0]
        sock.sendto(intel_rom(mac, "request", xid=xid, flags=0x8000, extra=[
            ("server_id", options(offer)[54]), ("requested_addr", offer.yiaddr)]),
            ("255.255.255.255", 67))
        acks = [a for a in collect(sock, xid, 3.0, bool) if options(a).get(53) == 5]
        if acks:
            address = acks[0].yiaddr
            result["address"] = address
            subprocess.run(["ip", "addr", "add", f"{address}/24", "dev", interface], check=True)
    if proxies and "address" in result:
        proxy = options(proxies[0])[54]
        sock.sendto(intel_rom(mac, "request", xid=xid + 1, ciaddr=result["address"]),
                    (proxy, 4011))
        acks = collect(sock, xid + 1, 3.0, bool)
        if acks:
            result["proxy_ack_file"] = acks[0].file.rstrip(b"\0").decode()
            result["proxy_ack_yiaddr"] = acks[0].yiaddr
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
