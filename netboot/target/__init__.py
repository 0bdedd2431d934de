"""The iSCSI target side: the backend protocol, its records, and the backend a config names."""

from __future__ import annotations

from netboot.config import Config, TargetKind
from netboot.target.backend import TargetBackend
from netboot.target.model import (
    GLOBAL,
    Account,
    DesiredState,
    Login,
    Lun,
    Outcome,
    Renewal,
    TargetError,
    TargetSpec,
    TargetState,
    TargetUnreachable,
)
from netboot.target.tgt import TgtBackend


def open_backend(config: Config) -> TargetBackend | None:
    """The backend ``target.backend`` names; None when netboot does not manage the target."""
    if not config.target.manage:
        return None
    if config.target.backend is TargetKind.TGT:
        return TgtBackend(config.target.tgt_control_port, config.storage.state_dir,
                          rbd_options(config))
    raise TargetError(f"target backend {config.target.backend} is not implemented")


def rbd_options(config: Config) -> str:
    """tgt bs_rbd's ``--bsopts``: the Ceph configuration and client id ``storage.rbd`` names
    (the keyring comes from that file; a key is never put in the options)."""
    rbd = config.storage.rbd
    return f"conf={rbd.ceph_conf};id={rbd.client_id}"


def managed_backend(config: Config) -> TargetBackend:
    """The backend, for commands that only make sense when netboot manages the target."""
    backend = open_backend(config)
    if backend is None:
        raise TargetError("target.manage is off in the config: netboot does not manage the "
                          "iSCSI target")
    return backend


__all__ = [
    "GLOBAL", "Account", "DesiredState", "Login", "Lun", "Outcome", "Renewal", "TargetBackend",
    "TargetError", "TargetSpec", "TargetState", "TargetUnreachable", "managed_backend",
    "open_backend",
]
