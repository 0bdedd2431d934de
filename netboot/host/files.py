"""Files on the host, durably: digests, and (later) atomic writes and temporary names."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in blocks (kernel packages are tens of MB)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
