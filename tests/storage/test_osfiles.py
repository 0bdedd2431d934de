"""What netboot puts into a golden Debian root: rendered units and scripts (golden
files), the edits of open-iscsi's own config files, and the identity it strips."""

import subprocess
from pathlib import Path

import pytest

from netboot.storage.osfiles import (
    DEFAULT_OPTIONS,
    IBFT_DIR,
    IBFT_SECRET_MODE,
    IBFT_SECRETS,
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


def _sanboot_files():
    return {f.path: f for f in image_files(OsOptions(sanboot=True))}


@pytest.mark.parametrize("name", sorted(_files()))
def test_rendered_file_matches_golden(name):
    assert _files()[name].content == (GOLDEN / name).read_text()


def test_sanboot_marker_turns_on_ibft_login():
    assert _files(OsOptions(sanboot=True))["iscsi.initramfs"].content == \
        (GOLDEN / "iscsi.initramfs.sanboot").read_text()


@pytest.mark.parametrize("path", sorted(INITRAMFS_FILES))
def test_sanboot_image_gets_the_initramfs_file_that_hides_ibft_secrets(path):
    assert _sanboot_files()[path].content == (GOLDEN / INITRAMFS_FILES[path]).read_text()


def test_initramfs_image_gets_no_initramfs_tools_files():
    assert not [f.path for f in image_files(DEFAULT_OPTIONS) if "initramfs-tools" in f.path]


@pytest.mark.parametrize("path", sorted(INITRAMFS_FILES))
def test_initramfs_tools_file_is_executable_posix_shell(path):
    # initramfs-tools skips a hook or script that is not executable.
    item = _sanboot_files()[path]
    assert item.mode == 0o755 and item.content.startswith("#!/bin/sh\n")
    subprocess.run(["dash", "-n"], input=item.content, text=True, check=True)


def _run_ibft_script(tmp_path, modprobe_status):
    """The init-top script run by dash on a fake iBFT tree, with a stub modprobe;
    the mode of every attribute afterwards."""
    ibft = tmp_path / "ibft"
    attributes = [ibft / target / name for target in ("target0", "target1")
                  for name in (*IBFT_SECRETS, "ip-addr", "target-name")]
    for path in attributes:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
        path.chmod(0o444)
    stub = tmp_path / "bin" / "modprobe"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\nexit {modprobe_status}\n")
    stub.chmod(0o755)
    script = tmp_path / "ibft-private"
    text = _sanboot_files()["etc/initramfs-tools/scripts/init-top/netboot-ibft-private"].content
    script.write_text(text.replace(IBFT_DIR, str(ibft)))
    subprocess.run(["dash", str(script)], check=True,
                   env={"PATH": f"{stub.parent}:/usr/bin:/bin"})
    return {f"{p.parent.name}/{p.name}": p.stat().st_mode & 0o777 for p in attributes}


def test_ibft_script_leaves_the_chap_attributes_to_root_and_the_rest_alone(tmp_path):
    modes = _run_ibft_script(tmp_path, 0)
    assert {k for k, mode in modes.items() if mode == IBFT_SECRET_MODE} == {
        f"{t}/{n}" for t in ("target0", "target1") for n in IBFT_SECRETS}
    assert {k for k, mode in modes.items() if mode == 0o444} == {
        f"{t}/{n}" for t in ("target0", "target1") for n in ("ip-addr", "target-name")}


def test_ibft_script_without_the_module_changes_nothing_and_lets_the_boot_go_on(tmp_path):
    assert set(_run_ibft_script(tmp_path, 1).values()) == {0o444}


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
