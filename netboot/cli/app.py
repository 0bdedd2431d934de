"""The root command group and the object every subcommand gets: config and inventory, lazily."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import click

from netboot.config import DEFAULT_CONFIG_PATH, Config
from netboot.configfile import load_config
from netboot.errors import NetbootError
from netboot.inventory.store import Inventory, open_inventory
from netboot.log import setup_logging


class App:
    """What a command needs, opened only when it asks (``init`` needs no config)."""

    def __init__(self, config_path: Path = DEFAULT_CONFIG_PATH) -> None:
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        return load_config(self.config_path)

    @cached_property
    def inventory(self) -> Inventory:
        return open_inventory(self.config)


class NetbootGroup(click.Group):
    """Turns a :class:`NetbootError` anywhere below into one line on stderr and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NetbootError as err:
            raise click.ClickException(str(err)) from None


pass_app = click.make_pass_decorator(App)


@click.group(cls=NetbootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=DEFAULT_CONFIG_PATH, envvar="NETBOOT_CONFIG", show_default=True,
              help="Config file (also $NETBOOT_CONFIG).")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="Log lines for people or for machines.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.version_option(package_name="netboot")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, log_format: str, log_level: str) -> None:
    """Diskless boot: DHCP/PXE, TFTP/HTTP, iSCSI-root initramfs and a Linux SAN on tgt."""
    setup_logging(log_format, log_level)
    app = ctx.ensure_object(App)
    app.config_path = config_path
    ctx.call_on_close(lambda: app.__dict__.get("inventory") and app.inventory.close())
