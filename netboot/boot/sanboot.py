"""Method ``sanboot``: the per-client iPXE script that logs in to the client's LUN itself.

iPXE's ``sanboot`` makes the iSCSI login (with mutual CHAP when configured),
boots the LUN as a local disk and hands the session to the operating system
through the iBFT, the way an iSCSI HBA would. The script holds the client's
secrets, so it is rendered on request and served to that client only.
"""

from __future__ import annotations

from netboot.config import Config, OnFail
from netboot.inventory.clients import Client
from netboot.inventory.luns import ROOT_LUN
from netboot.templates import render

# What the script does when the login or the boot fails, per boot.onfail.
_ONFAIL = {OnFail.SHELL: ("dropping to the iPXE shell", "shell"),
           OnFail.REBOOT: ("rebooting", "reboot"),
           OnFail.HALT: ("powering off", "poweroff")}


def sanboot_uri(config: Config, client: Client) -> str:
    """iPXE's iSCSI root path (RFC 4173): ``iscsi:<server>:<proto>:<port>:<lun>:<target>``."""
    portal, port = config.portal
    return f"iscsi:{portal}::{port}:{ROOT_LUN}:{client.target_iqn}"


def render_sanboot_script(config: Config, client: Client) -> str:
    """The iPXE script that sanboots ``client`` from its root LUN."""
    action, command = _ONFAIL[config.boot.onfail]
    return render("sanboot.ipxe.j2", client=client, uri=sanboot_uri(config, client),
                  mutual=config.target.mutual_chap, onfail_action=action,
                  onfail_command=command)
