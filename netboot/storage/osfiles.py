"""What netboot puts into (and takes out of) a golden Debian root so it boots diskless.

A golden image is cloned for every machine, so it must carry no identity of
its own: no machine-id, no SSH host keys, no initiator name, no hostname.
Each clone gets its own at boot, from what netboot's initramfs leaves in
/run/netboot (method ``initramfs``) or from the iBFT (method ``sanboot``).
The same files let the root's open-iscsi take over the session the
initramfs logged in, and keep shutdown from logging out of it before the
root is unmounted (docs/os-takeover.md is the contract with /init). A sanboot
image's own initramfs also makes the iBFT's CHAP secrets readable by root only,
before any user process runs.

Everything here is pure (files rendered from templates, text edits) except
:func:`make_netboot_ready`, which applies it to a tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netboot.errors import NetbootError
from netboot.host.run import run
from netboot.templates import TEMPLATE_DIR, render

OSIMAGE_TEMPLATES = TEMPLATE_DIR / "osimage"
# What /init leaves for the running system (the contract in docs/os-takeover.md).
CLIENT_CONF = "/run/netboot/client.conf"
IBFT_DIR = "/sys/firmware/ibft"
# The attributes of each iBFT target that hold CHAP credentials (the kernel's
# drivers/scsi/iscsi_boot_sysfs.c names them; drivers/firmware/iscsi_ibft.c makes
# them 0444) and the mode that keeps them to root.
IBFT_SECRETS = ("chap-name", "chap-secret", "rev-chap-name", "rev-chap-secret")
IBFT_SECRET_MODE = 0o400
# tgt puts each target's portal in group 1; used when sysfs does not say.
DEFAULT_TPGT = 1

# Timers for a root on iSCSI. A day before queued I/O is failed, as open-iscsi's
# README ("iSCSI settings for iSCSI root") recommends, so a target restart or a
# portal's move is only a pause. Pings every 5 s, answered within 5 s (open-iscsi's
# own defaults), unlike that README, which allows them off: they are what notices
# a portal's holder that died holding commands (TCP has nothing left to resend),
# so the session moves to the other server within ~10 s instead of waiting for the
# SCSI command timeout (30 s, then error handling). With that replacement timeout a
# ping that times out only reconnects; queued I/O waits, nothing fails. iscsid applies
# them when it adopts the initramfs' session (its one re-login), and /init logs in
# without pings: until an iscsid runs, nothing would recover a connection one dropped.
ROOT_ISCSID_SETTINGS = {
    "node.session.timeo.replacement_timeout": "86400",
    "node.conn[0].timeo.noop_out_interval": "5",
    "node.conn[0].timeo.noop_out_timeout": "5",
}

# Method sanboot: initramfs-tools copies scripts/ into every initramfs it makes and
# runs hooks/ as it makes one, so an initramfs rebuilt later keeps them.
INITRAMFS_FILES = {
    "etc/initramfs-tools/scripts/init-top/netboot-ibft-private": "ibft-private",
    "etc/initramfs-tools/hooks/netboot-ibft-private": "ibft-private-hook",
}

UNITS = (
    "netboot-identity.service",
    "netboot-iscsi-root.service",
    "netboot-ssh-keygen.service",
    "netboot-os-up.service",
)
# iscsid must run from boot to adopt the initramfs' session (Debian enables
# only its socket, which nothing would trigger); acpid to hear the power button.
ENABLE = (*UNITS, "iscsid.service", "acpid.service")
# acpid's event for the ACPI power button: a clean poweroff (a BMC's soft power-off).
POWER_BUTTON_EVENT = "etc/acpi/events/netboot-power-button"

# Per-machine state the package installation left in the tree.
SSH_HOST_KEYS = "etc/ssh/ssh_host_*"
IDENTITY_FILES = (
    "etc/hostname",  # mmdebstrap copies the build host's
    "etc/resolv.conf",  # likewise: the build host's resolver, not the clients'
    "var/lib/systemd/random-seed",
    "var/lib/dbus/machine-id",
)
GENERATE_INITIATOR = (
    "## netboot: replaced at boot by netboot-identity.service with this machine's name.\n"
    "GenerateName=yes\n"
)
HOSTS = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"


class OsImageError(NetbootError):
    """Building or preparing an operating-system image failed."""


@dataclass(frozen=True)
class ImageFile:
    """One file netboot writes into the image, path relative to its root."""

    path: str
    content: str
    mode: int


@dataclass(frozen=True)
class OsOptions:
    """The choices that shape the files: where the console is, which boot method."""

    console: str = "ttyS0"
    sanboot: bool = False
    boot_timeout: int = 300  # seconds NETBOOT-OS-UP waits for the end of boot


DEFAULT_OPTIONS = OsOptions()


def _render(name: str, options: OsOptions) -> str:
    return render(
        f"{name}.j2", OSIMAGE_TEMPLATES, client_conf=CLIENT_CONF, ibft=IBFT_DIR,
        default_tpgt=DEFAULT_TPGT, console=options.console, sanboot=options.sanboot,
        boot_timeout=options.boot_timeout, root_settings=ROOT_ISCSID_SETTINGS,
        ibft_secrets=IBFT_SECRETS, ibft_secret_mode=f"{IBFT_SECRET_MODE:o}",
    )


def image_files(options: OsOptions) -> list[ImageFile]:
    """Every file netboot adds to a golden image, rendered."""
    units = [ImageFile(f"etc/systemd/system/{unit}", _render(unit, options), 0o644)
             for unit in UNITS]
    scripts = [ImageFile(f"usr/lib/netboot/{name}", _render(name, options), 0o755)
               for name in ("identity", "iscsi-root", "os-up")]
    marker = ImageFile("etc/iscsi/iscsi.initramfs", _render("iscsi.initramfs", options), 0o644)
    power_button = ImageFile(POWER_BUTTON_EVENT, _render("acpi-power-button", options), 0o644)
    # Only the image's own initramfs (sanboot) sees the iBFT; method initramfs boots netboot's.
    initramfs = [ImageFile(path, _render(name, options), 0o755)
                 for path, name in INITRAMFS_FILES.items()] if options.sanboot else []
    return [*units, *scripts, marker, power_button, *initramfs]


def grub_config(label: str, options: OsOptions) -> str:
    """/boot/grub/grub.cfg of a sanboot image: its own kernel, root found by label."""
    return render("grub.cfg.j2", OSIMAGE_TEMPLATES, label=label[:16], console=options.console)


def set_shell_variable(text: str, name: str, value: str, where: str) -> str:
    """``text`` with the assignment ``NAME=...`` made ``NAME=value``; it must be there."""
    pattern = re.compile(rf"^{re.escape(name)}=.*$", re.MULTILINE)
    if not pattern.search(text):
        raise OsImageError(f"{where}: no {name}= line to set")
    return pattern.sub(f"{name}={value}", text)


def set_iscsid_settings(text: str, settings: dict[str, str], where: str) -> str:
    """iscsid.conf ``text`` with each ``key = value`` of ``settings`` in force."""
    for key, value in settings.items():
        pattern = re.compile(rf"^#?\s*{re.escape(key)}\s*=.*$", re.MULTILINE)
        if not pattern.search(text):
            raise OsImageError(f"{where}: no {key} setting to change")
        text = pattern.sub(f"{key} = {value}", text, count=1)
    return text


def _edit(root: Path, relative: str, change: Callable[[str, str], str]) -> None:
    path = root / relative
    if not path.is_file():
        raise OsImageError(f"{path}: missing; is open-iscsi installed in the image?")
    path.write_text(change(path.read_text(), str(path)))


def strip_identity(root: Path) -> None:
    """Remove everything that would make two clones the same machine."""
    for key in root.glob(SSH_HOST_KEYS):
        key.unlink()
    for relative in IDENTITY_FILES:
        (root / relative).unlink(missing_ok=True)
    # Empty, not absent: systemd then makes a new one at boot and writes it back.
    (root / "etc/machine-id").write_text("")
    (root / "etc/iscsi/initiatorname.iscsi").write_text(GENERATE_INITIATOR)
    hosts = root / "etc/hosts"
    if not hosts.exists():
        hosts.write_text(HOSTS)


def write_files(root: Path, files: list[ImageFile]) -> None:
    for item in files:
        path = root / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(item.content)
        path.chmod(item.mode)


def make_netboot_ready(root: Path, options: OsOptions) -> None:
    """Turn an installed Debian tree into a golden image netboot can clone.

    Needs root: units are enabled by the image's own ``systemctl`` in a chroot.
    """
    strip_identity(root)
    write_files(root, image_files(options))
    _edit(root, "etc/default/open-iscsi", lambda text, where: set_shell_variable(
        text, "ISCSI_ROOT_KEEP_ALL_SESSIONS_AT_SHUTDOWN", "1", where))
    _edit(root, "etc/iscsi/iscsid.conf", lambda text, where: set_iscsid_settings(
        text, ROOT_ISCSID_SETTINGS, where))
    run_in_root(root, ["systemctl", "enable", *ENABLE])


def run_in_root(root: Path, argv: list[str]) -> str:
    """Run ``argv`` inside the tree (chroot); its output, or an error naming it."""
    return run(["chroot", str(root), *argv], what=f"{' '.join(argv)} in {root} failed",
               error=OsImageError)
