"""Time to root: one client booted through `netboot serve` and through dnsmasq, in one run.

Both sides boot the same VM (same MAC, tap, firmware), the same kernel, the
same initrds (netboot's base initramfs + that client's part, joined) and
log in to the same LUN on the same tgtd; only the DHCP/TFTP/HTTP server
differs. The dnsmasq side is configured by hand (netboot.lab.reference),
once as the textbook recipe and once tuned (router advertisements and
iPXE's no-pxedhcp). Prints seconds from VM start to NETBOOT-ROOT-OK and the
ratio netboot / dnsmasq. Needs root; runs TCG VMs one at a time.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from netboot.boot.clientpart import build_client_part
from netboot.boot.scripts import ipxe_script
from netboot.config import Config
from netboot.configfile import load_config
from netboot.errors import NetbootError
from netboot.inventory.clients import Client
from netboot.inventory.store import Inventory
from netboot.lab import lab, reference, topology
from netboot.lab.markers import ROOT_OK
from netboot.lab.vm import Accel, Firmware, Vm, VmSpec
from netboot.output import table


def netboot_kernel_args(config: Config, client: Client) -> str:
    """The kernel arguments netboot's own iPXE script gives ``client`` (its initrd names aside)."""
    kernel = next(line for line in ipxe_script(config, client).splitlines()
                  if line.startswith("kernel "))
    words = kernel.split("||")[0].split()[2:]  # after "kernel <url>", before "|| goto failed"
    return " ".join(w for w in words if not w.startswith("initrd="))


def _boot(topo: topology.Topology, client: Client, firmware: Firmware, accel: Accel,
          work: Path, timeout: float) -> float:
    """Seconds from VM start to the root's NETBOOT-ROOT-OK line: one measure for every server."""
    with Vm(VmSpec(client.hostname, client.mac, topo.taps[0], firmware=firmware, accel=accel),
            work, topo.netns) as vm:
        return vm.wait_for(ROOT_OK, timeout).at


def _dnsmasq(topo: topology.Topology, config: Config, client: Client, tuning: reference.Tuning,
             work: Path) -> AbstractContextManager[reference.ReferenceServer]:
    """dnsmasq serving ``client`` what netboot would: kernel, both initrds (joined), arguments."""
    initrd = config.initramfs_path.read_bytes() + build_client_part(config, client)
    return reference.serve(topo, work, config.kernel_path, initrd,
                           [reference.Host(client.mac, client.ip)],
                           kernel_args=netboot_kernel_args(config, client), tuning=tuning)


def _compare(lab_dir: Path, state: lab.LabState, firmware: Firmware,
             timeout: float) -> list[tuple[str, float]]:
    config = load_config(state.config)
    topo = topology.load(lab_dir)
    assert topo is not None
    with Inventory(config.storage.database) as inventory:
        client = inventory.get(state.clients[0].mac)
    accel = Accel(state.accel)
    rows = [("netboot", _boot(topo, client, firmware, accel, lab_dir / "netboot", timeout))]
    lab.stop_serve(state)  # one DHCP server on the VLAN at a time; tgtd stays
    for tuning in reference.TUNINGS:
        work = lab_dir / f"dnsmasq-{tuning.name}"
        with _dnsmasq(topo, config, client, tuning, work):
            rows.append((f"dnsmasq ({tuning.name})",
                         _boot(topo, client, firmware, accel, work, timeout)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uefi", action="store_true", help="OVMF instead of SeaBIOS")
    parser.add_argument("--dir", type=Path, default=lab.default_lab_dir() / "bench",
                        help="lab directory for this run (default: lab-state/bench)")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    firmware = Firmware.UEFI if args.uefi else Firmware.BIOS
    lab_dir = args.dir.resolve()
    try:
        state = lab.up(lab_dir, 1, cache_dir=lab.default_lab_dir() / "cache")
        try:
            rows = _compare(lab_dir, state, firmware, args.timeout)
        finally:
            lab.down(lab_dir)
    except NetbootError as err:
        print(f"time_to_root: {err}", file=sys.stderr)
        return 1
    print(f"time to root, {firmware}, {state.accel}, seconds from VM start:")
    netboot_s = rows[0][1]
    print(table(["server", "seconds", "netboot / this"],
                [(name, f"{s:.1f}", f"{netboot_s / s:.2f}") for name, s in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
