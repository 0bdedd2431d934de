"""`netboot target list|reconcile|stop|portal`: the iSCSI target as it is, brought in step,
stopped, and its floating portal (keepalived's side)."""

from __future__ import annotations

import os
from dataclasses import asdict

import click

from netboot.cli.app import App, pass_app
from netboot.errors import NetbootError
from netboot.output import emit_json, table
from netboot.target import managed_backend
from netboot.target.failover.decide import VrrpState
from netboot.target.failover.portal import notify as notify_transition
from netboot.target.failover.portal import prepare
from netboot.target.reconcile import reconcile


@click.group()
def target() -> None:
    """The iSCSI target daemon (tgtd) that serves client LUNs."""


@target.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """Targets that exist on the daemon, with their LUNs, ACL and sessions."""
    found = managed_backend(app.config).targets()
    if as_json:
        emit_json([asdict(t) for t in found])
        return
    click.echo(table(["target", "luns", "initiators", "chap", "sessions"],
                     [(t.iqn, ", ".join(f"{lun.number}:{lun.path}" for lun in t.luns),
                       ", ".join(t.initiators) or None,
                       ", ".join([*t.incoming, *([f"{t.outgoing} (out)"] if t.outgoing else [])])
                       or None, t.sessions) for t in found]))


@target.command(name="reconcile")
@click.option("--force", is_flag=True,
              help="Set every CHAP account again, also those that look in step (tgt cannot "
                   "show secrets: this repairs one changed behind netboot's back).")
@pass_app
def reconcile_(app: App, force: bool) -> None:
    """Bring the target in step with the inventory now (serve does this by itself)."""
    backend = managed_backend(app.config)
    if force:
        backend.forget_secrets()
    outcome = reconcile(app.config, app.inventory, backend)
    for change in outcome.changes:
        click.echo(change)
    for owner, error in outcome.failed.items():
        click.echo(f"failed: {owner}: {error}", err=True)
    click.echo(f"{len(outcome.changes)} change(s), {len(outcome.failed)} failure(s)")
    if outcome.failed:
        raise SystemExit(1)


@target.command()
@click.confirmation_option(prompt="Stop tgtd? Every client loses its disks.")
@pass_app
def stop(app: App) -> None:
    """Delete every target and stop tgtd (it ignores SIGTERM; this is how it stops)."""
    backend = managed_backend(app.config)
    if backend.running() is None:
        click.echo(f"no tgtd runs on control port {app.config.target.tgt_control_port}")
        return
    backend.stop()
    click.echo("tgtd stopped")


@target.group()
def portal() -> None:
    """The floating portal shared with a second server (target.failover)."""


@portal.command()
@pass_app
def run(app: App) -> None:
    """Prepare this server for the floating portal, then become keepalived (foreground).

    Run it before this server's tgtd starts: it lifts the fence the peer may have put on
    this server and stops an earlier tgtd, whose Ceph clients may be fenced.
    """
    if not app.config.target.failover.enabled:
        raise NetbootError("target.failover.enabled is false in the config")
    argv = prepare(app.config)
    os.execvp(argv[0], argv)


@portal.command(hidden=True)
@click.argument("kind")
@click.argument("name")
@click.argument("state", type=click.Choice([s.value for s in VrrpState]))
@click.argument("priority", required=False)
@pass_app
def notify(app: App, kind: str, name: str, state: str, priority: str | None) -> None:
    """keepalived's notify script: KIND (INSTANCE) NAME STATE [PRIORITY]."""
    actions = notify_transition(app.config, VrrpState(state))
    click.echo(f"{kind} {name} {state}: {', '.join(actions) or 'nothing to do'}")
