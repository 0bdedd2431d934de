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
from pathlib import Path

from netboot.clientpart import build_client_part
from netboot.configfile import load_config
from netboot.errors import NetbootError
from netboot.inventory import Inventory
from netboot.lab import lab, reference, topology
from netboot.lab.markers import ROOT_OK, Stage
from netboot.lab.vm import Accel, Firmware, Vm, VmSpec
from netboot.output import table


def _dnsmasq_boot(lab_dir: Path, state: lab.LabState, firmware: Firmware,
                  tuning: reference.Tuning, timeout: float) -> float:
    """Seconds to root for the lab's first client served by dnsmasq instead of netboot."""
    config = load_config(state.config)
    topo = topology.load(lab_dir)
    assert topo is not None
    client_ref = state.clients[0]
    with Inventory(config.storage.database) as inventory:
        client = inventory.get(client_ref.mac)
    initrd = config.initramfs_path.read_bytes() + build_client_part(config, client)
    args = (f"netboot.mac={client.mac} netboot.onfail={config.boot.onfail} "
            f"{config.boot.kernel_args}").strip()
    work = lab_dir / f"dnsmasq-{firmware}-{tuning.name}"
    with reference.serve(topo, work, config.kernel_path, initrd,
                         [reference.Host(client.mac, client.ip)], kernel_args=args,
                         tuning=tuning), \
            Vm(VmSpec(client.hostname, client.mac, topo.taps[0], firmware=firmware,
                      accel=Accel(state.accel)), work, topo.netns) as vm:
        return vm.wait_for(ROOT_OK, timeout).at


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
            progress, _ = lab.boot(lab_dir, 1, firmware, args.timeout)
            netboot_s = progress[0].times.get(Stage.ROOT)
            if netboot_s is None:
                raise NetbootError(f"the netboot boot did not reach its root: "
                                   f"{progress[0].result}")
            lab.stop_serve(state)  # one DHCP server on the VLAN at a time
            rows = [("netboot", netboot_s)]
            for tuning in reference.TUNINGS:
                rows.append((f"dnsmasq ({tuning.name})",
                             _dnsmasq_boot(lab_dir, state, firmware, tuning, args.timeout)))
        finally:
            lab.down(lab_dir)
    except NetbootError as err:
        print(f"time_to_root: {err}", file=sys.stderr)
        return 1
    print(f"time to root, {firmware}, {state.accel}, seconds from VM start:")
    print(table(["server", "seconds", "netboot / this"],
                [(name, f"{s:.1f}", f"{netboot_s / s:.2f}") for name, s in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
