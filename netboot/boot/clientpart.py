"""The per-client initramfs part: a tiny cpio with ``/etc/netboot/client.conf``.

It is the only place a client's CHAP secrets leave the server, so it is
built in memory on request and served only to that client's address. The
boot loader passes it as a second initrd after the shared base image; the
kernel unpacks both into one root.
"""

from __future__ import annotations

from netboot import initramfs
from netboot.boot import urls
from netboot.config import Config
from netboot.initramfs.cpio import Entry, write_newc
from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.luns import LOWER_LUN, ROOT_LUN
from netboot.templates import render

CLIENT_CONF = "etc/netboot/client.conf"


def render_client_conf(config: Config, client: Client) -> str:
    portal, port = config.portal
    ip6 = config.ipv6_of(client.ip) if config.ipv6_only else None
    return render(
        "client.conf.j2", initramfs.DATA,
        client=client, server=config.boot_address, report_url=urls.report_url(config, client.mac),
        ip6=f"{ip6}/{config.dhcp6.subnet.prefixlen}" if ip6 and config.dhcp6.subnet else "",
        portal=portal, portal_port=port, lun=ROOT_LUN, mutual=config.target.mutual_chap,
        lower_lun=LOWER_LUN if client.boot_method is BootMethod.OVERLAY else "",
        root_fstype="ext4", root_options="rw",
    )


def build_client_part(config: Config, client: Client) -> bytes:
    """The cpio of ``client``'s settings and initiator name, reproducible."""
    return write_newc([
        Entry.file(CLIENT_CONF, render_client_conf(config, client).encode(), 0o600),
        Entry.file("etc/iscsi/initiatorname.iscsi",
                   f"InitiatorName={client.initiator_iqn}\n".encode(), 0o644),
    ], mtime=int(client.created))
