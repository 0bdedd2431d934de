"""Shared-library resolution from the ELF header and the dynamic loader's --list."""

from pathlib import Path

import pytest

from netboot.initramfs.elf import ElfError, interpreter, parse_loader_list, shared_libraries

LIST = """\
\tlinux-vdso.so.1 (0x00007ffd1c9f2000)
\tlibkmod.so.2 => /lib/x86_64-linux-gnu/libkmod.so.2 (0x00007f3a1c913000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3a1c71e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3a1c9ab000)
"""


def test_loader_list_gives_library_paths_without_vdso():
    assert parse_loader_list(LIST) == [Path("/lib/x86_64-linux-gnu/libkmod.so.2"),
                                       Path("/lib/x86_64-linux-gnu/libc.so.6")]


def test_missing_library_is_an_error_naming_it():
    with pytest.raises(ElfError, match=r"libopeniscsiusr\.so\.0"):
        parse_loader_list("\tlibopeniscsiusr.so.0 => not found\n")


def test_iscsistart_asks_for_the_system_loader():
    assert interpreter(Path("/sbin/iscsistart").read_bytes()) == "/lib64/ld-linux-x86-64.so.2"


def test_static_busybox_has_no_loader():
    assert interpreter(Path("/bin/busybox").read_bytes()) is None


def test_non_elf_file_is_rejected():
    with pytest.raises(ElfError, match="not a 64-bit"):
        interpreter(b"#!/bin/sh\n")


def test_iscsistart_needs_libc_and_libkmod():
    loader, libraries = shared_libraries(Path("/sbin/iscsistart"))
    names = {p.name for p in libraries}
    assert loader and {"libc.so.6", "libkmod.so.2", "libopeniscsiusr.so.0.2.0"} <= names
