"""What an ordinary open-iscsi host needs to use its LUNs: ``client show --initiator-config``
and ``host show --initiator-config``, from one template."""

from __future__ import annotations

from netboot.config import Config
from netboot.inventory.hosts import DiscoveryMutual, Identity
from netboot.templates import render


def initiator_config(config: Config, who: Identity,
                     discovery_mutual: DiscoveryMutual | None = None) -> str:
    """initiatorname.iscsi, the iscsid.conf CHAP lines and the iscsiadm commands for a
    client's or a SAN host's target.

    Mutual CHAP (username_in/password_in) only when target.mutual_chap is on;
    discovery CHAP lines only when target.discovery_auth is on, because tgt
    then refuses discovery without them; discovery's mutual lines only with
    ``discovery_mutual``, the account the target answers discovery with (bound
    while SAN hosts exist, see :func:`netboot.target.reconcile.desired_state`).
    """
    address, port = config.portal
    return render("initiator-config.j2", who=who, portal=f"{address}:{port}",
                  mutual=config.target.mutual_chap, discovery_auth=config.target.discovery_auth,
                  discovery_mutual=discovery_mutual)
