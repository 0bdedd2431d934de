"""The ``login`` boot stage as the target sees it: a client's initiator logged in to its target.

Under ``sanboot`` iPXE logs in itself and no /init reports anything, so the
target's session list is the only witness of that step; for ``initramfs``
clients it confirms what /init reports. :func:`new_logins` is pure: the
sessions seen in the previous round and who is logged in to each target now in,
the clients whose ``login`` stage to record out.

Only a session that appeared since the previous round counts, so a running
client is not written every second; at the first round (nothing seen yet)
every session counts. Either way a client whose last stage is already
``login`` or later (``root``, ``failed``) keeps it: /init may have reported
``root`` a moment before the session was seen, and a session re-established
after a tgtd restart is the running system's, not a new boot. The writer
checks :data:`LOGIN_OR_LATER` again in its write transaction (``unless``),
as /init's ``root`` may arrive between the read and the write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netboot.inventory.clients import Client
from netboot.inventory.stages import Stage
from netboot.target.model import Login

Session = tuple[str, str]  # (target IQN, initiator IQN)

LOGIN_OR_LATER = frozenset({Stage.LOGIN, Stage.ROOT, Stage.OS_UP, Stage.FAILED})


Logins = Mapping[str, Iterable[Login]]  # who is logged in, by target IQN


def sessions(logins: Logins) -> frozenset[Session]:
    """Every (target, initiator) pair logged in now."""
    return frozenset((iqn, login.initiator) for iqn, held in logins.items() for login in held)


def new_logins(previous: frozenset[Session], logins: Logins,
               clients: Iterable[Client]) -> list[tuple[Client, Login]]:
    """Clients whose own initiator newly logged in to their own target, before ``login``."""
    fresh: dict[Session, Login] = {}
    for iqn, held in logins.items():
        for login in held:
            if (iqn, login.initiator) not in previous:
                fresh.setdefault((iqn, login.initiator), login)
    return [(c, fresh[(c.target_iqn, c.initiator_iqn)]) for c in clients
            if (c.target_iqn, c.initiator_iqn) in fresh and c.last_stage not in LOGIN_OR_LATER]
