"""The shared libraries a dynamically linked program needs, as its own loader sees them.

The program's ELF header names its dynamic loader (``PT_INTERP``); running that
loader with ``--list`` resolves every ``DT_NEEDED`` entry transitively, with the
system's search paths, without running the program (which ``ldd`` may do).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from netboot.errors import NetbootError
from netboot.host.run import run

PT_INTERP = 3
_ELF_MAGIC = b"\x7fELF"
# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
_RESOLVED = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


class ElfError(NetbootError):
    """A program or one of its libraries cannot be resolved."""


def interpreter(data: bytes) -> str | None:
    """The dynamic loader an ELF64 little-endian file asks for, or None if it is static."""
    if data[:4] != _ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise ElfError("not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == PT_INTERP:
            offset, = struct.unpack_from("<Q", data, phoff + i * phentsize + 8)
            size, = struct.unpack_from("<Q", data, phoff + i * phentsize + 32)
            return data[offset:offset + size].rstrip(b"\0").decode()
    return None


def parse_loader_list(text: str) -> list[Path]:
    """The library paths in ``ld.so --list`` output (the vDSO has no file and is skipped)."""
    paths: list[Path] = []
    missing = [m.group(1) for m in map(_NOT_FOUND.match, text.splitlines()) if m]
    if missing:
        raise ElfError(f"shared libraries not found: {', '.join(missing)}")
    for line in text.splitlines():
        m = _RESOLVED.match(line)
        if m:
            paths.append(Path(m.group(2)))
    return paths


def shared_libraries(program: Path) -> tuple[str, list[Path]]:
    """``program``'s loader path and every library it loads (the loader not included)."""
    try:
        loader = interpreter(program.read_bytes())
    except OSError as err:
        raise ElfError(f"{program}: {err.strerror}") from None
    except ElfError as err:
        raise ElfError(f"{program}: {err}") from None
    if loader is None:
        return "", []
    listing = run([loader, "--list", str(program)], what=f"{loader} --list {program} failed",
                  error=ElfError)
    return loader, parse_loader_list(listing)
