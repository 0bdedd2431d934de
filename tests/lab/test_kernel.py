"""Taking vmlinuz out of a Debian kernel package for lab VMs (with a real dpkg-deb)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netboot.lab.kernel import _extract_vmlinuz
from netboot.lab.topology import LabError


def _deb(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A real .deb built by dpkg-deb holding ``files``."""
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fake-image\nVersion: 1.0\nArchitecture: amd64\n"
        "Maintainer: lab <lab@example.org>\nDescription: test\n")
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    deb = tmp_path / "fake-image_1.0_amd64.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def test_vmlinuz_is_extracted_from_the_deb(tmp_path):
    deb = _deb(tmp_path, {"boot/vmlinuz-6.1.0-1-cloud-amd64": b"KERNEL",
                          "boot/config-6.1.0-1-cloud-amd64": b"CONFIG"})
    _extract_vmlinuz(deb, tmp_path / "out.vmlinuz")
    assert (tmp_path / "out.vmlinuz").read_bytes() == b"KERNEL"


def test_deb_without_vmlinuz_is_an_error_and_leaves_no_file(tmp_path):
    deb = _deb(tmp_path, {"usr/share/doc/x": b"doc"})
    with pytest.raises(LabError, match="no /boot/vmlinuz"):
        _extract_vmlinuz(deb, tmp_path / "out.vmlinuz")
    assert list(tmp_path.glob("out.*")) == []
