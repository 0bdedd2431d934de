"""`netboot lab up|boot|down`: a boot VLAN with QEMU clients on this machine, for a first look;
`netboot lab ceph up|down|status`: the one-node Ceph cluster RBD storage is tried on."""

from __future__ import annotations

from pathlib import Path

import click

from netboot.arch import Arch
from netboot.config import Loader
from netboot.lab import ceph, lab
from netboot.lab.progress import summary_json, summary_table
from netboot.lab.vm import Accel, Firmware
from netboot.output import emit_json, fields_table, table

LAB_DIR = click.option("--dir", "lab_dir", type=click.Path(path_type=Path, file_okay=False),
                       default=lab.default_lab_dir, show_default="$NETBOOT_LAB_DIR or ./lab-state",
                       help="Where the lab keeps its config, state, cache and logs.")


@click.group(name="lab")
def lab_group() -> None:
    """An isolated boot VLAN (network namespace) with netboot serving QEMU clients."""


@lab_group.command()
@LAB_DIR
@click.option("--clients", default=1, show_default=True, type=click.IntRange(1, 100),
              help="How many client machines to register (one tap each).")
@click.option("--loader", type=click.Choice([loader.value for loader in Loader]), default="ipxe",
              show_default=True,
              help="boot.loader: grub-secureboot boots UEFI clients (lab boot --firmware "
                   "uefi-secureboot) through Debian's signed shim, GRUB and kernel.")
@click.option("--lun-size", default="1G", show_default=True, help="Each client's root LUN.")
@click.option("--unknown", type=click.Choice(["ignore", "boot"]), default="ignore",
              show_default=True, help="What an unregistered machine gets (dhcp.unknown).")
@click.option("--accel", type=click.Choice(["auto", *(a.value for a in Accel)]), default="auto",
              show_default=True, help="auto: KVM only if a probe boot shows it works.")
@click.option("--storage", type=click.Choice([s.value for s in lab.LabStorage]), default="file",
              show_default=True,
              help="Where the image and roots live: files in the lab dir, or RBD images on a "
                   "one-node Ceph cluster (the lab's own in DIR/ceph, or --ceph-dir's).")
@click.option("--ceph-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="With --storage ceph: a cluster that is up ('netboot lab ceph up --dir') to "
                   "use; 'lab down' removes the lab's roots and image there and detaches.")
@click.option("--ipv6", is_flag=True,
              help="An IPv6-only boot VLAN: DHCPv6 and router advertisements, no IPv4 there; "
                   "boot it with 'lab boot --firmware uefi-ipv6'.")
@click.option("--arch", type=click.Choice([a.value for a in Arch]), default=Arch.AMD64.value,
              show_default=True,
              help="The clients' architecture: arm64 prepares the ARM64 kernel, initramfs and "
                   "built-in image ('lab boot' boots them with --firmware aarch64-uefi).")
def up(lab_dir: Path, clients: int, loader: str, lun_size: str, unknown: str,
       accel: str, storage: str, ceph_dir: Path | None, ipv6: bool, arch: str) -> None:
    """Prepare boot files, make the VLAN, start tgtd and netboot serve, add the clients."""
    lab.up(lab_dir.resolve(), clients, loader=loader, lun_size=lun_size, unknown=unknown,
           accel=None if accel == "auto" else Accel(accel), storage=lab.LabStorage(storage),
           ceph_dir=ceph_dir.resolve() if ceph_dir else None, ipv6=ipv6, arch=Arch(arch),
           say=click.echo)
    click.echo(f"lab is up in {lab_dir}; 'netboot lab boot' boots its clients")


@lab_group.command()
@LAB_DIR
@click.option("--clients", type=click.IntRange(1, 100), default=None,
              help="Boot only the first N clients (default: all).")
@click.option("--firmware", type=click.Choice([f.value for f in Firmware]), default=None,
              help="bios (SeaBIOS and the NIC's iPXE ROM, the default for amd64), uefi (OVMF), "
                   "uefi-http (OVMF's own UEFI HTTP boot: no PXE, no TFTP) or uefi-secureboot "
                   "(OVMF enforcing Secure Boot with Microsoft's keys: for a lab up with "
                   "--loader grub-secureboot), aarch64-uefi (an ARM64 VM with AAVMF: the default "
                   "for a lab up with --arch arm64).")
@click.option("--uefi", is_flag=True, help="Same as --firmware uefi.")
@click.option("--timeout", default=lab.BOOT_TIMEOUT, show_default=True, type=float,
              help="Seconds for every client to reach its root.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def boot(lab_dir: Path, clients: int | None, firmware: str | None, uefi: bool, timeout: float,
         as_json: bool) -> None:
    """Boot the clients as VMs, show their progress, then seconds to each milestone."""
    if uefi and firmware not in (None, Firmware.UEFI):
        raise click.UsageError(f"--uefi and --firmware {firmware} disagree")
    chosen = Firmware(firmware) if firmware else Firmware.UEFI if uefi else None
    progress, cpu = lab.boot(lab_dir.resolve(), clients, chosen, timeout)
    if as_json:
        emit_json({"clients": summary_json(progress), "server_cpu_seconds": cpu})
    else:
        click.echo(summary_table(progress))
        if cpu is not None:
            click.echo(f"netboot serve used {cpu:.2f} CPU seconds")
    if not all(c.result == "ok" for c in progress):
        raise click.exceptions.Exit(1)


@lab_group.command()
@LAB_DIR
def down(lab_dir: Path) -> None:
    """Stop and remove everything the lab made (also what a crashed run left)."""
    removed = lab.down(lab_dir.resolve())
    click.echo(f"lab in {lab_dir} removed" if removed else f"no lab in {lab_dir}")


CEPH_DIR = click.option("--dir", "ceph_dir", type=click.Path(path_type=Path, file_okay=False),
                        default=lambda: lab.default_lab_dir() / lab.CEPH_DIR,
                        show_default="the lab dir's ceph/",
                        help="Where the cluster keeps its conf, keys, data and logs.")


@lab_group.group(name="ceph")
def ceph_group() -> None:
    """A one-node Ceph cluster (mon, mgr, OSD on a sparse file) in a namespace of its own."""


@ceph_group.command(name="up")
@CEPH_DIR
@click.option("--pool", default="netboot", show_default=True, help="The RBD pool to make.")
def ceph_up(ceph_dir: Path, pool: str) -> None:
    """Make the cluster and its pool, attach the host, and leave it running."""
    cluster = ceph.up(ceph_dir.resolve(), pool=pool, say=click.echo)
    address = ceph.attach(cluster, None)
    click.echo(f"host attached as {address}; storage.rbd: pool {cluster.pool}, "
               f"ceph_conf {cluster.conf}, client_id {cluster.client_id}")


@ceph_group.command(name="down")
@CEPH_DIR
def ceph_down(ceph_dir: Path) -> None:
    """Stop and remove everything the cluster made (also what a killed run left)."""
    removed = ceph.down(ceph_dir.resolve())
    click.echo(f"Ceph cluster in {ceph_dir} removed" if removed
               else f"no Ceph cluster in {ceph_dir}")


@ceph_group.command(name="status")
@CEPH_DIR
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def ceph_status(ceph_dir: Path, as_json: bool) -> None:
    """Where the cluster is, how to reach it, its daemons, consumers and health."""
    report = ceph.status(ceph_dir.resolve())
    if as_json:
        emit_json(report)
    else:
        click.echo(fields_table((key, value) for key, value in report.items()
                                if not isinstance(value, list | dict)))
        click.echo(table(("daemon", "pid", "running"),
                         ((d["name"], d["pid"], "yes" if d["running"] else "no")
                          for d in report["daemons"])))
        click.echo(table(("consumer", "address"),
                         ((a["netns"] or "(host)", a["address"]) for a in report["attachments"])))
