"""What netboot puts into a golden Debian root: rendered units and scripts (golden
files), the edits of open-iscsi's own config files, and the identity it strips."""

import subprocess
from pathlib import Path

import pytest

from netboot.storage.osfiles import (
    DEFAULT_OPTIONS,
    INITRAMFS_FILES,
    ROOT_ISCSID_SETTINGS,
    OsImageError,
    OsOptions,
    image_files,
    set_iscsid_settings,
    set_shell_variable,
    strip_identity,
)

GOLDEN = Path(__file__).parent / "golden" / "osimage"
# open-iscsi's own files, as Debian ships them (open-iscsi is in debian-packages.txt).
DEFAULT_OPEN_ISCSI = Path("/etc/default/open-iscsi")
ISCSID_CONF = Path("/etc/iscsi/iscsid.conf")


def _files(options=DEFAULT_OPTIONS):
    return {Path(f.path).name: f for f in image_files(options)}


@pytest.mark.parametrize("name", sorted(_files()))
def test_rendered_file_matches_golden(name):
    assert _files()[name].content == (GOLDEN / name).read_text()


def test_sanboot_marker_turns_on_ibft_login():
    assert _files(OsOptions(sanboot=True))["iscsi.initramfs"].content == \
        (GOLDEN / "iscsi.initramfs.sanboot").read_text()


@pytest.mark.parametrize("path", sorted(INITRAMFS_FILES))
def test_sanboot_image_gets_the_initramfs_file_that_hides_ibft_secrets(path):
    files = {f.path: f for f in image_files(OsOptions(sanboot=True))}
    assert files[path].content == (GOLDEN / INITRAMFS_FILES[path]).read_text()


def test_initramfs_image_gets_no_initramfs_tools_files():
    assert not [f.path for f in image_files(DEFAULT_OPTIONS) if "initramfs-tools" in f.path]


@pytest.mark.parametrize("path", sorted(INITRAMFS_FILES))
def test_initramfs_tools_file_is_executable_posix_shell(path):
    # initramfs-tools skips a hook or script that is not executable.
    (item,) = [f for f in image_files(OsOptions(sanboot=True)) if f.path == path]
    assert item.mode == 0o755 and item.content.startswith("#!/bin/sh\n")
    subprocess.run(["dash", "-n"], input=item.content, text=True, check=True)


def test_console_is_where_the_report_goes():
    assert "TTYPath=/dev/ttyAMA0\n" in _files(OsOptions(console="ttyAMA0"))[
        "netboot-os-up.service"].content


@pytest.mark.parametrize("name", ["identity", "iscsi-root", "os-up"])
def test_script_is_executable_posix_shell(name):
    item = _files()[name]
    assert item.mode == 0o755 and item.content.startswith("#!/bin/sh\n")
    subprocess.run(["dash", "-n"], input=item.content, text=True, check=True)


def test_keep_root_sessions_switch_is_set_in_debians_file():
    text = set_shell_variable(DEFAULT_OPEN_ISCSI.read_text(),
                              "ISCSI_ROOT_KEEP_ALL_SESSIONS_AT_SHUTDOWN", "1", "x")
    assert "\nISCSI_ROOT_KEEP_ALL_SESSIONS_AT_SHUTDOWN=1\n" in text
    assert "ISCSI_ROOT_KEEP_ALL_SESSIONS_AT_SHUTDOWN=0" not in text


def test_missing_shell_variable_is_an_error_naming_the_file():
    with pytest.raises(OsImageError, match=r"f\.conf: no X= line"):
        set_shell_variable("Y=1\n", "X", "1", "f.conf")


def test_root_timers_are_set_in_debians_iscsid_conf():
    text = set_iscsid_settings(ISCSID_CONF.read_text(), ROOT_ISCSID_SETTINGS, "x")
    lines = set(text.splitlines())
    assert {f"{k} = {v}" for k, v in ROOT_ISCSID_SETTINGS.items()} <= lines
    assert "node.session.timeo.replacement_timeout = 120" not in lines


def test_strip_identity_leaves_no_machine_of_its_own(tmp_path):
    for relative, text in [("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
                           ("etc/hostname", "buildhost\n"), ("etc/resolv.conf", "nameserver 1\n"),
                           ("etc/ssh/ssh_host_ed25519_key", "k"),
                           ("etc/ssh/ssh_host_ed25519_key.pub", "k"), ("etc/ssh/sshd_config", "c"),
                           ("etc/iscsi/initiatorname.iscsi", "InitiatorName=iqn.x:1\n"),
                           ("var/lib/systemd/random-seed", "r")]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    strip_identity(tmp_path)
    assert (tmp_path / "etc/machine-id").read_text() == ""
    assert sorted(p.name for p in (tmp_path / "etc/ssh").iterdir()) == ["sshd_config"]
    assert not (tmp_path / "etc/hostname").exists()
    assert not (tmp_path / "etc/resolv.conf").exists()
    assert not (tmp_path / "var/lib/systemd/random-seed").exists()
    assert "GenerateName=yes" in (tmp_path / "etc/iscsi/initiatorname.iscsi").read_text()
