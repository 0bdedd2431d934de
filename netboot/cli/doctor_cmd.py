"""`netboot doctor`: is everything a client needs to boot in place?"""

from __future__ import annotations

from dataclasses import asdict

import click

from netboot.boot.loaders import check
from netboot.cli.app import App, pass_app
from netboot.output import emit_json, table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Check the boot files in the TFTP root against MANIFEST.json; exit 1 if one is wrong."""
    root = app.config.tftp_root_path
    rows = check(root)
    if as_json:
        emit_json({"tftp_root": str(root), "files": [asdict(r) for r in rows]})
    else:
        click.echo(f"TFTP root {root}:")
        click.echo(table(["file", "package", "version", "state", "fix"],
                         [(r.name, r.package, r.version, r.state, r.fix) for r in rows]))
    bad = [r for r in rows if not r.ok]
    if bad:
        if not as_json:
            click.echo(f"{len(bad)} of {len(rows)} boot files need attention", err=True)
        raise SystemExit(1)
