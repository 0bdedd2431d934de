"""`netboot doctor`: is everything a client needs to boot in place?"""

from __future__ import annotations

from dataclasses import asdict

import click

from netboot.boot.loaders import check
from netboot.cli.app import App, pass_app
from netboot.output import emit_json, table
from netboot.serve.requirements import check as check_requirements
from netboot.serve.requirements import requirements


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Check the Debian packages serving with this config needs, and the boot files in the
    TFTP root against MANIFEST.json; exit 1 if one is missing or wrong."""
    root = app.config.tftp_root_path
    rows = check(root)
    needed = check_requirements(requirements(app.config))
    if as_json:
        emit_json({"packages": [asdict(n.requirement) | {"found": n.found, "fix": n.fix}
                                for n in needed],
                   "tftp_root": str(root), "files": [asdict(r) for r in rows]})
    else:
        click.echo("Debian packages:")
        click.echo(table(["package", "needed", "found", "for", "fix"],
                         [(n.requirement.package, n.requirement.name, n.found or "MISSING",
                           n.requirement.purpose, n.fix) for n in needed]))
        click.echo(f"\nTFTP root {root}:")
        click.echo(table(["file", "package", "version", "state", "fix"],
                         [(r.name, r.package, r.version, r.state, r.fix) for r in rows]))
    missing = [n for n in needed if not n.ok]
    bad = [r for r in rows if not r.ok]
    if missing or bad:
        if not as_json:
            if missing:
                packages = sorted({n.requirement.package for n in missing})
                click.echo(f"missing Debian packages: {' '.join(packages)} "
                           f"(apt-get install {' '.join(packages)})", err=True)
            if bad:
                click.echo(f"{len(bad)} of {len(rows)} boot files need attention", err=True)
        raise SystemExit(1)
