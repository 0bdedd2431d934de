"""What an ordinary open-iscsi host needs to use its LUNs: ``client show --initiator-config``."""

from __future__ import annotations

from netboot.config import Config
from netboot.inventory.clients import Client
from netboot.templates import render


def initiator_config(config: Config, client: Client) -> str:
    """initiatorname.iscsi, the iscsid.conf CHAP lines and the iscsiadm commands.

    Mutual CHAP (username_in/password_in) only when target.mutual_chap is on;
    discovery CHAP lines only when target.discovery_auth is on, because tgt
    then refuses discovery without them.
    """
    address, port = config.portal
    return render("initiator-config.j2", client=client, portal=f"{address}:{port}",
                  mutual=config.target.mutual_chap, discovery_auth=config.target.discovery_auth)
