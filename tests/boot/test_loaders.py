"""tftproot population from Debian's packages, its manifest, and `netboot doctor`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from netboot.arch import Arch
from netboot.boot import loaders
from netboot.boot.loaders import (
    BOOT_FILES,
    GRUB_ARM64,
    MANIFEST,
    FileState,
    check,
    populate,
)
from netboot.cli import cli
from netboot.host.files import sha256_file


def test_populate_copies_every_boot_file_with_its_package_version_and_sha256(tmp_path: Path):
    populate(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())["files"]
    assert [e["name"] for e in manifest] == [f.name for f in BOOT_FILES]
    for entry, f in zip(manifest, BOOT_FILES, strict=True):
        assert entry["package"] == f.apt_name
        assert entry["version"]
        assert entry["sha256"] == sha256_file(tmp_path / f.name)
        if not f.foreign:  # installed here; another architecture's is fetched (next test)
            assert entry["sha256"] == sha256_file(f.source)


def test_arm64_grub_is_fetched_from_its_arm64_package_into_its_own_directory(tmp_path: Path):
    grub = next(f for f in BOOT_FILES if f.name == GRUB_ARM64)
    populate(tmp_path / "root", (grub,), cache=tmp_path / "cache")
    entry, = json.loads((tmp_path / "root" / MANIFEST).read_text())["files"]
    assert entry["name"] == "arm64/grubnetaa64.efi"
    assert entry["package"] == "grub-efi-arm64-signed:arm64"
    data = (tmp_path / "root" / "arm64" / "grubnetaa64.efi").read_bytes()
    assert data[:2] == b"MZ"  # a PE image...
    pe = int.from_bytes(data[0x3C:0x40], "little")
    assert data[pe:pe + 6] == b"PE\0\0\x64\xaa"  # ...for IMAGE_FILE_MACHINE_ARM64 (0xaa64)
    assert list((tmp_path / "cache").glob("grub-efi-arm64-signed_*_arm64.deb"))


def test_the_secure_boot_chain_sits_in_a_directory_of_its_own_from_the_signed_packages(
        tmp_path: Path):
    populate(tmp_path)
    manifest = {e["name"]: e for e in json.loads((tmp_path / MANIFEST).read_text())["files"]}
    shim, grub = manifest["secureboot/x64/shimx64.efi"], manifest["secureboot/x64/grubx64.efi"]
    assert (shim["package"], shim["source"]) == ("shim-signed", "/usr/lib/shim/shimx64.efi.signed")
    assert (grub["package"], grub["source"]) == (
        "grub-efi-amd64-signed", "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
    for directory in (tmp_path / "secureboot", tmp_path / "secureboot" / "x64"):
        assert directory.stat().st_mode & 0o777 == 0o755  # the network part reads them
    names = [f.name for f in BOOT_FILES]
    assert len(names) == len(set(names))  # no loader overwrites another's file


def test_populate_twice_changes_nothing(tmp_path: Path):
    populate(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    populate(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_check_reports_a_missing_and_a_changed_file(tmp_path: Path):
    populate(tmp_path)
    (tmp_path / "pxelinux.0").unlink()
    (tmp_path / "ipxe.efi").write_bytes(b"not ipxe")
    states = {s.name: s.state for s in check(tmp_path)}
    assert states["pxelinux.0"] is FileState.MISSING
    assert states["ipxe.efi"] is FileState.CHANGED
    assert states["undionly.kpxe"] is FileState.OK


def test_doctor_exits_1_and_says_how_to_fix_a_missing_file(make_config, tmp_path: Path):
    config = make_config()
    populate(config.tftp_root_path)
    (config.tftp_root_path / "ldlinux.c32").unlink()
    result = CliRunner().invoke(cli, ["--config", str(config.source), "doctor"])
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if x.startswith("ldlinux.c32"))
    assert "missing" in line
    assert f"python -m netboot.boot.loaders {config.tftp_root_path}" in line


def test_doctor_exits_0_when_every_file_matches(make_config):
    config = make_config()
    populate(config.tftp_root_path)
    result = CliRunner().invoke(cli, ["--config", str(config.source), "doctor", "--json"])
    assert result.exit_code == 0, result.output
    assert {f["state"] for f in json.loads(result.output)["files"]} == {"ok"}


def test_where_apt_does_not_know_arm64_its_loader_is_left_out_and_doctor_says_how(
        tmp_path: Path, monkeypatch):
    monkeypatch.setattr(loaders, "apt_architectures", lambda: frozenset({Arch.AMD64}))
    populate(tmp_path)
    assert not (tmp_path / GRUB_ARM64).exists()
    row = next(r for r in check(tmp_path) if r.name == GRUB_ARM64)
    assert row.state is FileState.NOT_SET_UP and row.ok  # optional: doctor still passes
    assert row.fix is not None and row.fix.startswith("dpkg --add-architecture arm64 && ")
