"""Boot stages: one vocabulary for DHCP, the file servers, /init's reports, the target's
login watch, the lab's console markers and ``netboot status``."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """A client's boot stages in the order they happen (``failed`` can come at any point)."""

    DHCP = "dhcp"  # an address was acknowledged
    LOADER = "loader"  # boot loader or iPXE script fetched
    KERNEL = "kernel"  # kernel fetched or running
    INITRAMFS = "initramfs"  # /init started
    NETWORK = "network"  # /init configured the network
    LOGIN = "login"  # iSCSI login done
    ROOT = "root"  # root mounted
    OS_UP = "os-up"  # the booted system says it is up (its os-up report)
    FAILED = "failed"


ORDER: tuple[Stage, ...] = tuple(s for s in Stage if s is not Stage.FAILED)
# What a client may report over HTTP (/init, then the booted system's os-up report); the
# earlier stages are seen by the servers themselves.
REPORTED_STAGES = frozenset({Stage.INITRAMFS, Stage.NETWORK, Stage.LOGIN, Stage.ROOT,
                             Stage.OS_UP, Stage.FAILED})
