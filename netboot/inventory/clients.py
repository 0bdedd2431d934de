"""Client records: the registered machines and the machines that asked but are not registered."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from ipaddress import IPv4Address

from netboot.inventory.backend import Row
from netboot.inventory.stages import Stage


def mutual_user(chap_user: str) -> str:
    """The name a target answers with in mutual CHAP, for a client's or a SAN host's
    account ``chap_user`` (tgt's accounts are global, so it needs a name of its own)."""
    return f"{chap_user}-target"


class BootMethod(StrEnum):
    """How a client reaches its root (stored as its value in ``clients.boot_method``).

    INITRAMFS: netboot's kernel and /init log in and mount an ext4 root image.
    SANBOOT: iPXE logs in and boots the LUN as a disk (the image's own GRUB and
    kernel), handing the session over through the iBFT.
    OVERLAY: as INITRAMFS, but the root is an overlayfs: its lower layer is the image
    version itself (``image``), exported read-only and shared by every client on it;
    its upper layer is the client's own small ext4 LUN (``lun_path``, ``lun_size``).
    """

    INITRAMFS = "initramfs"
    SANBOOT = "sanboot"
    OVERLAY = "overlay"


@dataclass(frozen=True)
class Client:
    """One registered machine. Secrets are left out of ``repr`` so they never reach a log."""

    mac: str
    hostname: str
    ip: IPv4Address
    image: str | None
    lun_path: str | None
    lun_size: int
    initiator_iqn: str
    target_iqn: str
    chap_user: str
    chap_secret: str = field(repr=False)
    mutual_secret: str = field(repr=False)
    boot_method: BootMethod = BootMethod.INITRAMFS
    provisioned: bool = False
    created: float = 0.0
    last_seen: float | None = None
    last_stage: Stage | None = None
    last_stage_at: float | None = None
    previous_image: str | None = None  # a reimaged client's former image version and root,
    previous_lun_path: str | None = None  # kept until `client reimage --undo` or `--purge`
    next_lun_path: str | None = None  # the root a reimage is making (set while it runs)
    booted_image: str | None = None  # the image version its last boot mounted (at root)

    @property
    def mutual_user(self) -> str:
        return mutual_user(self.chap_user)

    @classmethod
    def from_row(cls, row: Row) -> Client:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["ip"] = IPv4Address(values["ip"])
        values["provisioned"] = bool(values["provisioned"])
        values["boot_method"] = BootMethod(values["boot_method"])
        if values["last_stage"] is not None:
            values["last_stage"] = Stage(values["last_stage"])
        return cls(**values)

    def to_row(self) -> dict[str, object]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["ip"] = str(self.ip)
        row["provisioned"] = int(self.provisioned)
        row["boot_method"] = self.boot_method.value
        row["last_stage"] = self.last_stage.value if self.last_stage is not None else None
        return row


@dataclass(frozen=True, slots=True)
class UnknownNote:
    """One request of an unregistered machine, to be recorded."""

    mac: str
    at: float
    vendor_class: str | None = None
    arch: int | None = None


@dataclass(frozen=True)
class UnknownMachine:
    """A machine that asked to boot but is not registered."""

    mac: str
    first_seen: float
    last_seen: float
    requests: int
    vendor_class: str | None
    arch: int | None

