"""The `netboot` command: parses arguments and wires the core together, nothing more."""

import os

from netboot.cli.app import cli
from netboot.cli.client_cmd import client
from netboot.cli.config_cmd import config, init
from netboot.cli.dhcp_cmd import dhcp
from netboot.cli.doctor_cmd import doctor
from netboot.cli.host_cmd import host
from netboot.cli.image_cmd import image
from netboot.cli.initramfs_cmd import initramfs, kernel
from netboot.cli.lab_cmd import lab_group
from netboot.cli.lun_cmd import lun
from netboot.cli.rollout_cmd import rollout
from netboot.cli.serve_cmd import install_service, serve
from netboot.cli.server_cmd import server
from netboot.cli.status_cmd import status
from netboot.cli.target_cmd import target

cli.add_command(init)
cli.add_command(config)
cli.add_command(client)
cli.add_command(serve)
cli.add_command(install_service)
cli.add_command(status)
cli.add_command(server)
cli.add_command(image)
cli.add_command(lun)
cli.add_command(host)
cli.add_command(kernel)
cli.add_command(initramfs)
cli.add_command(doctor)
cli.add_command(lab_group)
cli.add_command(target)
cli.add_command(dhcp)
cli.add_command(rollout)


def main() -> None:
    # What netboot writes (inventory, LUNs, rendered files) may hold secrets or a machine's
    # disk: nothing group- or world-readable. Set here, for the process, not by a command,
    # so a caller that imports the CLI keeps its own umask.
    os.umask(0o077)
    cli(prog_name="netboot")


__all__ = ["cli", "main"]
