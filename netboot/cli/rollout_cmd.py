"""`netboot rollout NAME[@N] --clients ... | --all`, `netboot rollout --undo`."""

from __future__ import annotations

from dataclasses import asdict

import click

from netboot.cli.app import App, pass_app
from netboot.output import emit_json, table
from netboot.rollout.plan import select
from netboot.rollout.record import Rollout
from netboot.rollout.run import roll_out, undo
from netboot.target import open_backend

DEFAULT_TIMEOUT = 600.0  # seconds a batch has to reach os-up: a Debian boot under TCG fits


def say(line: str) -> None:
    """Progress, on stderr: stdout keeps the table (or the JSON) alone."""
    click.echo(line, err=True)


@click.command()
@click.argument("version", required=False, metavar="NAME[@N]")
@click.option("--clients", "selectors", multiple=True, metavar="SELECTOR",
              help="MACs or host names (globs allowed: 'web-*'), comma-separated or repeated.")
@click.option("--all", "everyone", is_flag=True, help="Every registered client.")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True,
              help="Clients power-cycled at once after the canaries.")
@click.option("--canary", type=click.IntRange(0), default=0, show_default=True,
              help="Clients moved alone first.")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds a batch has to report os-up on the new version.")
@click.option("--undo", "undoing", is_flag=True,
              help="Put every client of the last roll-out back on its previous version.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def rollout(app: App, version: str | None, selectors: tuple[str, ...], everyone: bool,
            batch: int, canary: int, timeout: float, undoing: bool, as_json: bool) -> None:
    """Move clients to image version NAME@N (NAME: its newest) in batches: each client is
    powered off through its BMC, given a root of that version, booted from the network and
    waited for until it reports os-up on it. The first batch that does not get there stops
    the roll-out; the clients after it are left as they are."""
    if undoing == (version is not None):
        raise click.UsageError("give NAME[@N] with --clients or --all, or --undo alone")
    if undoing:
        done = undo(app.config, app.inventory, timeout=timeout,
                    backend=open_backend(app.config), say=say)
    else:
        assert version is not None
        names = [s.strip() for selector in selectors for s in selector.split(",") if s.strip()]
        chosen = select(app.inventory.clients(), names, everyone=everyone)
        done = roll_out(app.config, app.inventory, version, chosen, batch=batch, canary=canary,
                        timeout=timeout, backend=open_backend(app.config), say=say)
    _show(done, as_json)
    if done.stopped is not None:
        raise click.exceptions.Exit(1)


def _show(done: Rollout, as_json: bool) -> None:
    if as_json:
        emit_json(asdict(done))
        return
    click.echo(table(["client", "mac", "from", "to", "result"],
                     [(m.hostname, m.mac, m.previous_image, done.version, m.result)
                      for m in done.moves]))
    if done.stopped:
        click.echo(f"stopped at {done.stopped}; the clients after it were not touched "
                   "('netboot rollout --undo' puts the moved ones back)")
