"""`netboot lab up|boot|down`: a boot VLAN with QEMU clients on this machine, for a first look."""

from __future__ import annotations

from pathlib import Path

import click

from netboot.lab import lab
from netboot.lab.progress import summary_json, summary_table
from netboot.lab.vm import Accel, Firmware
from netboot.output import emit_json

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
@click.option("--loader", type=click.Choice(["ipxe", "pxelinux"]), default="ipxe",
              show_default=True)
@click.option("--lun-size", default="1G", show_default=True, help="Each client's root LUN.")
@click.option("--accel", type=click.Choice(["auto", *(a.value for a in Accel)]), default="auto",
              show_default=True, help="auto: KVM only if a probe boot shows it works.")
def up(lab_dir: Path, clients: int, loader: str, lun_size: str, accel: str) -> None:
    """Prepare boot files, make the VLAN, start tgtd and netboot serve, add the clients."""
    lab.up(lab_dir.resolve(), clients, loader=loader, lun_size=lun_size,
           accel=None if accel == "auto" else Accel(accel), say=click.echo)
    click.echo(f"lab is up in {lab_dir}; 'netboot lab boot' boots its clients")


@lab_group.command()
@LAB_DIR
@click.option("--clients", type=click.IntRange(1, 100), default=None,
              help="Boot only the first N clients (default: all).")
@click.option("--uefi", is_flag=True, help="OVMF instead of SeaBIOS.")
@click.option("--timeout", default=lab.BOOT_TIMEOUT, show_default=True, type=float,
              help="Seconds for every client to reach its root.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def boot(lab_dir: Path, clients: int | None, uefi: bool, timeout: float, as_json: bool) -> None:
    """Boot the clients as VMs, show their progress, then seconds to each milestone."""
    progress, cpu = lab.boot(lab_dir.resolve(), clients,
                             Firmware.UEFI if uefi else Firmware.BIOS, timeout)
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
