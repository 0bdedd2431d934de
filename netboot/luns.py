"""Extra LUNs (2, 3, ...) on a client's target: a SAN for hosts that boot from their own disk.

LUN 1 is the client's root (see :mod:`netboot.provision`); these are files
or block devices the admin names. Their records live in the inventory's
``luns`` table and go with the client when it is removed; their data is the
admin's and is never deleted by netboot.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from netboot.errors import Conflict, NotFound, ValidationError
from netboot.inventory import Inventory

ROOT_LUN = 1


@dataclass(frozen=True)
class LunRecord:
    """One extra LUN: which client, its number, what backs it and how big it is."""

    mac: str
    lun: int
    path: str
    kind: str  # "file" or "device"
    size: int
    created: float


def extra_luns(inventory: Inventory, mac: str | None = None) -> list[LunRecord]:
    """Extra LUNs of one client, or of every client, in LUN order."""
    with inventory.transaction() as db:
        if mac is None:
            rows = db.execute("SELECT * FROM luns ORDER BY mac, lun").fetchall()
        else:
            rows = db.execute("SELECT * FROM luns WHERE mac = ? ORDER BY lun", (mac,)).fetchall()
    return [LunRecord(**dict(r)) for r in rows]


def device_size(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _check_file(path: Path, size: int | None) -> tuple[int, bool]:
    """The file's size, creating it sparse when missing; True when it was created here."""
    if path.exists():
        if not path.is_file():
            raise ValidationError(f"{path} exists and is not a regular file (use --device "
                                  "for a block device)")
        if size is not None and size != path.stat().st_size:
            raise ValidationError(f"{path} exists with {path.stat().st_size} bytes; "
                                  f"--size {size} differs (leave --size out to use it as is)")
        return path.stat().st_size, False
    if size is None:
        raise ValidationError(f"{path} does not exist: give --size to create it")
    if not path.parent.is_dir():
        raise NotFound(f"directory {path.parent} does not exist")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return size, True


def add_lun(inventory: Inventory, mac: str, *, file: Path | None = None,
            device: Path | None = None, size: int | None = None) -> LunRecord:
    """Record the next extra LUN of client ``mac`` (a sparse file is created when missing)."""
    if (file is None) == (device is None):
        raise ValidationError("give exactly one of --file or --device")
    inventory.get(mac)  # NotFound before anything is created
    if device is not None:
        path = Path(os.path.abspath(device))
        if not path.exists() or not stat.S_ISBLK(path.stat().st_mode):
            raise ValidationError(f"{device} is not a block device")
        if size is not None:
            raise ValidationError("--size applies to --file only (a device has its own size)")
        kind, size, created = "device", device_size(path), False
    else:
        path = Path(os.path.abspath(file))
        kind = "file"
        size, created = _check_file(path, size)
    try:
        with inventory.transaction() as db:
            clash = db.execute("SELECT mac, lun FROM luns WHERE path = ?", (str(path),)).fetchone()
            root = db.execute("SELECT mac FROM clients WHERE lun_path = ?",
                              (str(path),)).fetchone()
            if clash or root:
                owner = clash[0] if clash else root[0]
                raise Conflict(f"{path} already backs a LUN of client {owner}")
            number = db.execute("SELECT coalesce(max(lun), ?) + 1 FROM luns WHERE mac = ?",
                                (ROOT_LUN, mac)).fetchone()[0]
            record = LunRecord(mac, number, str(path), kind, size, time.time())
            db.execute("INSERT INTO luns (mac, lun, path, kind, size, created)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       (mac, number, record.path, kind, size, record.created))
    except BaseException:
        if created:
            path.unlink(missing_ok=True)
        raise
    return record


def remove_lun(inventory: Inventory, mac: str, number: int) -> LunRecord:
    """Forget extra LUN ``number`` of ``mac`` (its file or device is left as it is)."""
    if number == ROOT_LUN:
        raise ValidationError("LUN 1 is the client's root; `netboot client remove` removes it")
    with inventory.transaction() as db:
        row = db.execute("SELECT * FROM luns WHERE mac = ? AND lun = ?", (mac, number)).fetchone()
        if row is None:
            raise NotFound(f"client {mac} has no LUN {number}")
        db.execute("DELETE FROM luns WHERE mac = ? AND lun = ?", (mac, number))
    return LunRecord(**dict(row))
