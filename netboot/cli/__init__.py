"""The `netboot` command: parses arguments and wires the core together, nothing more."""

from netboot.cli.app import cli
from netboot.cli.client_cmd import client
from netboot.cli.config_cmd import config, init
from netboot.cli.doctor_cmd import doctor
from netboot.cli.serve_cmd import serve

cli.add_command(init)
cli.add_command(config)
cli.add_command(client)
cli.add_command(serve)
cli.add_command(doctor)


def main() -> None:
    cli(prog_name="netboot")


__all__ = ["cli", "main"]
