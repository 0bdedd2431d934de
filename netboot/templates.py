"""Jinja2 rendering of netboot's files: strict, so a missing value is an error, not a blank."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@cache
def environment(directory: Path = TEMPLATE_DIR) -> jinja2.Environment:
    """One environment per template directory, with StrictUndefined; templates are read
    once (no auto-reload): they ship with the package, and a check of the file before each
    render would cost a ``stat`` per boot script."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,
    )


def render(name: str, directory: Path = TEMPLATE_DIR, **values: Any) -> str:
    """Render template ``name`` from ``directory`` with ``values``."""
    return environment(directory).get_template(name).render(**values)
