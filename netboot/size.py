"""Sizes as people write them: ``512M``, ``2G``, ``1.5GiB``, ``1073741824``."""

import re

from netboot.errors import ValidationError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes in ``text``; units are binary (K = 1024), as in dd and qemu-img."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValidationError(f"size {text} must be positive")
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValidationError(f"{text!r} is not a size (expected e.g. 512M, 2G, 1.5GiB)")
    value = int(float(m[1]) * _UNITS[m[2].lower()])
    if value <= 0:
        raise ValidationError(f"size {text!r} must be positive")
    return value


def format_size(n: int) -> str:
    """Short human form of a byte count: ``2.0G``, ``512M``, ``17K``."""
    for unit in ("T", "G", "M", "K"):
        scale = _UNITS[unit.lower()]
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{n}B"
