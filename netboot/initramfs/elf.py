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


PT_LOAD = 1
PT_DYNAMIC = 2
DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
_SEARCH = ("lib/{triplet}", "usr/lib/{triplet}", "lib", "usr/lib")  # glibc's system dirs
_MAX_LINKS = 40


def machine(data: bytes) -> int:
    """An ELF file's ``e_machine`` (EM_X86_64, EM_AARCH64, ...)."""
    if data[:4] != _ELF_MAGIC:
        raise ElfError("not an ELF file")
    return struct.unpack_from("<H", data, 0x12)[0]


def is_elf(data: bytes) -> bool:
    return data[:4] == _ELF_MAGIC


def needed(data: bytes) -> list[str]:
    """The ``DT_NEEDED`` names of an ELF64 little-endian file (empty if it is static)."""
    interpreter(data)  # checks the class and byte order
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        base = phoff + i * phentsize
        p_type, = struct.unpack_from("<I", data, base)
        offset, vaddr = struct.unpack_from("<QQ", data, base + 8)
        filesz, = struct.unpack_from("<Q", data, base + 32)
        if p_type == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return []
    entries = []
    for at in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    strtab = next((v for t, v in entries if t == DT_STRTAB), None)
    if strtab is None:
        raise ElfError("a dynamic section without a string table")
    table = next((off + strtab - va for va, off, size in loads if va <= strtab < va + size), None)
    if table is None:
        raise ElfError("the string table is in no loaded segment")
    return [data[table + v:data.index(b"\0", table + v)].decode() for t, v in entries
            if t == DT_NEEDED]


def beneath(root: Path, name: str) -> Path | None:
    """The file ``name`` (a path as a system installed at ``root`` sees it) under ``root``,
    every symlink followed as that system would, never out of ``root``; None if missing."""
    todo = [p for p in name.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part in (".", ".."):
            done = done[:-1] if part == ".." else done
            continue
        path = root.joinpath(*done, part)
        if path.is_symlink():
            links += 1
            if links > _MAX_LINKS:
                raise ElfError(f"{name}: too many symbolic links under {root}")
            target = str(path.readlink())
            done = [] if target.startswith("/") else done
            todo = [p for p in target.split("/") if p] + todo
        elif path.exists():
            done.append(part)
        else:
            return None
    return root.joinpath(*done)


def libraries_beneath(root: Path, program: str, triplet: str) -> tuple[str, dict[str, Path]]:
    """``program``'s loader and every library it loads, as the system at ``root`` (of another
    architecture, whose loader cannot run here) would find them: ``DT_NEEDED`` closed over
    glibc's system directories. Libraries are given by their name in that system (what the
    image holds) with the file under ``root`` that has their bytes."""
    path = beneath(root, program)
    if path is None:
        raise ElfError(f"{program} is not under {root}")
    data = path.read_bytes()
    loader = interpreter(data) or ""
    found: dict[str, Path] = {}
    todo = needed(data)
    while todo:
        library = todo.pop()
        if any(Path(n).name == library for n in found):
            continue
        for directory in _SEARCH:
            name = f"{directory.format(triplet=triplet)}/{library}"
            real = beneath(root, name)
            if real is not None:
                found[name] = real
                todo += needed(real.read_bytes())
                break
        else:
            raise ElfError(f"{program}: shared library {library} is not under {root}")
    return loader, found
