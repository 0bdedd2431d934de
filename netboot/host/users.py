"""The unprivileged user netboot's network-facing part runs as, and what it may reach.

``netboot serve`` keeps root only where it needs it (tgtd, LUNs, target
accounts); the DHCP, TFTP and HTTP parsers run as ``server.user`` (a system
user ``make setup`` creates) with just the capabilities their sockets need.
util-linux's ``setpriv`` makes that switch (uid, gid, no groups, ambient
capabilities), so no hand-written capability code runs as root.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from netboot.config import ROOT_USER
from netboot.errors import NetbootError

# What the network-facing part keeps (capabilities(7)): binding ports 67 and 69
# (NET_BIND_SERVICE), binding sockets to the boot interface and raw sockets for router
# advertisements (NET_RAW), and telling the kernel a booting client's MAC so its DHCP
# reply goes unicast (NET_ADMIN: the SIOCSARP ioctl, as dnsmasq keeps it).
NETWORK_CAPABILITIES = ("net_bind_service", "net_raw", "net_admin")


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int


def service_user(name: str) -> ServiceUser:
    """The system user ``name``, or a NetbootError that says how to make it."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise NetbootError(
            f"server.user {name} does not exist: `make setup` creates it (adduser --system "
            f"--group {name}), or set server.user: {ROOT_USER} to run everything as root"
        ) from None
    return ServiceUser(name, entry.pw_uid, entry.pw_gid)


def blocking_directory(path: Path, user: ServiceUser) -> Path | None:
    """The first directory on the way to ``path`` that ``user`` cannot pass, or None.

    Judged from the mode bits and owners (no ACLs): a directory is passable by its
    owner with u+x, by its group with g+x, by anyone with o+x.
    """
    for directory in (*reversed(path.parents), path):
        try:
            info = directory.stat()
        except FileNotFoundError:
            return None  # made later, by whoever makes it
        if not stat.S_ISDIR(info.st_mode):
            return None
        if info.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return directory
    return None


def share(path: Path, user: ServiceUser, *, write: bool = False) -> None:
    """Let ``user``'s group read ``path`` (and pass it, for a directory), or also write it
    (``write``); the owner stays, so root keeps what is root's and others get nothing."""
    info = path.stat()
    if info.st_gid != user.gid:
        os.chown(path, -1, user.gid)
    grant = stat.S_IRGRP | (stat.S_IWGRP if write else 0)
    if stat.S_ISDIR(info.st_mode):
        grant |= stat.S_IXGRP
    mode = stat.S_IMODE(info.st_mode)
    if mode & grant != grant:
        os.chmod(path, mode | grant)


def drop_to(user: ServiceUser, argv: list[str]) -> list[str]:
    """``argv`` run as ``user``: no supplementary groups, only :data:`NETWORK_CAPABILITIES`
    (kept across the exec as ambient capabilities), no way to gain others, and a SIGTERM
    when its parent dies (a killed serve leaves no network part holding its ports)."""
    caps = ",".join(["-all", *(f"+{c}" for c in NETWORK_CAPABILITIES)])
    return ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
            f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
            "--no-new-privs", "--pdeathsig=TERM", "--", *argv]
