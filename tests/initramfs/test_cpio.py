"""The newc writer, checked by the real GNU cpio and for reproducibility."""

import subprocess

from netboot.initramfs.cpio import Entry, write_newc


def sample() -> list[Entry]:
    return [
        Entry.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
        Entry.symlink("bin/sh", "busybox"),
        Entry.chardev("dev/console", 5, 1),
        Entry.file("etc/secret", b"x" * 5, 0o600),
    ]


def test_gnu_cpio_lists_entries_with_modes_and_owners():
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=write_newc(sample()),
                             capture_output=True, check=True).stdout.decode().splitlines()
    by_name = {line.split()[-1] if "->" not in line else line.split()[-3]: line
               for line in listing}
    assert set(by_name) == {"bin", "bin/hello", "bin/sh", "dev", "dev/console", "etc",
                            "etc/secret"}
    assert by_name["bin/hello"].startswith("-rwxr-xr-x") and " root " in by_name["bin/hello"]
    assert by_name["etc/secret"].startswith("-rw-------")
    assert by_name["dev/console"].startswith("crw-------")
    assert by_name["bin"].startswith("drwxr-xr-x")


def test_gnu_cpio_extracts_contents(tmp_path):
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"],
                   input=write_newc([e for e in sample() if e.name != "dev/console"]),
                   cwd=tmp_path, check=True)
    assert (tmp_path / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (tmp_path / "bin/sh").readlink().as_posix() == "busybox"


def test_same_entries_in_any_order_give_the_same_bytes():
    assert write_newc(sample(), mtime=7) == write_newc(list(reversed(sample())), mtime=7)


def test_mtime_changes_the_bytes():
    assert write_newc(sample(), mtime=1) != write_newc(sample(), mtime=2)


def test_archive_length_is_a_multiple_of_the_alignment():
    for size in range(1, 9):
        data = write_newc([Entry.file("f", b"x" * size)], align=512)
        assert len(data) % 512 == 0
        assert len(write_newc([Entry.file("f", b"x" * size)])) % 4 == 0
