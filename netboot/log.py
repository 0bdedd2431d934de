"""One logging set-up for the whole package.

Human-readable lines by default, JSON lines with ``--log-format json``.
Everything about a client goes through :func:`client_log`, which puts its MAC
on the record, so one grep follows one machine from DHCP to its mounted root.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})))


class HumanFormatter(logging.Formatter):
    """``2026-11-26 07:04:17.123 INFO  dhcp [aa:bb:cc:dd:ee:ff] offer 198.18.0.10``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        mac = getattr(record, "mac", None)
        who = f" [{mac}]" if mac else ""
        name = record.name.removeprefix("netboot.")
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<5} {name}{who} " + (
            record.getMessage()
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields (``mac``, ``stage``...) become keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                plain = isinstance(value, int | float | bool | type(None))
                out[key] = value if plain else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, sort_keys=False)


def setup_logging(fmt: str = "human", level: str | int = "INFO", stream=None) -> None:
    """Configure the ``netboot`` logger once, for the CLI and the server alike."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger("netboot")
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    root.propagate = False


def log_settings() -> tuple[str, int]:
    """The format (``human`` or ``json``) and level :func:`setup_logging` set, for a child
    process to log alike."""
    logger = logging.getLogger("netboot")
    json_lines = any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers)
    return ("json" if json_lines else "human"), logger.getEffectiveLevel()


def client_log(logger: logging.Logger, mac: str, **extra: Any) -> logging.LoggerAdapter:
    """A logger whose every line carries the client's MAC (and any other fields)."""
    return logging.LoggerAdapter(logger, {"mac": mac, **extra})
