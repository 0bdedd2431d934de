"""IPv6-only boot VLAN: OVMF's PXE over IPv6 through `netboot serve` to an iSCSI root on IPv6.

The lab's bridge has a ULA and no IPv4 address; the client's firmware has
PXE over IPv4 turned off. OVMF asks netboot's DHCPv6 for ipxe.efi (a tftp://
URL on the server's IPv6 address), iPXE asks the RA (M flag) and DHCPv6 again
and gets its script, which fetches kernel and initrds over HTTP on IPv6;
/init sets the client's fixed IPv6 address and logs in to tgtd's IPv6 portal.
"""

from __future__ import annotations

import io
import time

from netboot.admin.views import status_json
from netboot.configfile import load_config
from netboot.inventory.stages import ORDER, Stage
from netboot.inventory.store import Inventory
from netboot.lab import lab
from netboot.lab.vm import Firmware


def test_ipv6_only_client_boots_to_its_iscsi_root_and_its_stages_show(netboot_lab, tmp_path,
                                                                     boot_timeout, record_boot):
    state = netboot_lab(1, ipv6=True)
    lab_dir = tmp_path / "netboot-lab"
    progress, _ = lab.boot(lab_dir, 1, Firmware.UEFI_IPV6, boot_timeout, stream=io.StringIO())
    client = state.clients[0]
    serial = (lab_dir / "vms" / f"{client.name}.serial.log").read_text()
    assert progress[0].result == "ok", serial
    record_boot(f"uefi-ipv6 {state.accel} PXEv6 + iPXE + HTTP/iSCSI over IPv6, root mounted",
                progress[0].times[Stage.ROOT])
    assert f"NETBOOT-ROOT-OK {client.name}" in serial
    assert "logging in to iqn." in serial and "at fd4e:6574:626f:1::1:3260" in serial
    config = load_config(state.config)
    with Inventory(config.storage.database) as inventory:
        shown = status_json(inventory, time.time())["clients"][0]  # what `status` shows
        seen = {stage for stage, _ in inventory.stage_log(client.mac)[client.mac]}
    assert shown["mac"] == client.mac and shown["stage"] in (Stage.ROOT, Stage.OS_UP)
    # dhcp (DHCPv6), loader, kernel (HTTP on IPv6), initramfs ... root (reported over IPv6)
    assert set(ORDER[:7]) <= seen
