"""Adding and removing LUNs on a client's target (2, 3, ...) or a SAN host's (1, 2, ...).

The files or block devices are the admin's: a missing file is created sparse,
but netboot never deletes one.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from netboot.config import Config
from netboot.errors import Conflict, NotFound, ValidationError
from netboot.host.files import create_sparse
from netboot.inventory.luns import LOWER_LUN, ROOT_LUN, LunKind, LunOwner, LunRecord, OwnerKind
from netboot.inventory.store import Inventory
from netboot.storage.location import Location


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
    create_sparse(path, size)
    return size, True


def add_lun(config: Config, inventory: Inventory, owner: LunOwner, *, file: Path | None = None,
            device: Path | None = None, rbd: Location | None = None,
            size: int | None = None) -> LunRecord:
    """Record the next LUN on ``owner``'s target (a sparse file or an RBD image is created
    when missing)."""
    if [file, device, rbd].count(None) != 2:
        raise ValidationError("give exactly one of --file, --device or --rbd")
    owner.target_iqn(inventory)  # NotFound before anything is created
    store = None
    path: Path | Location
    if rbd is not None:
        if rbd.snapshot:
            raise ValidationError(f"{rbd} is a snapshot, which cannot be written: an extra "
                                  "LUN is an RBD image (--rbd POOL/IMAGE)")
        from netboot.storage.rbdstore import RbdStore  # Ceph's bindings only for an RBD LUN
        store = RbdStore(config)
        kind, path = LunKind.RBD, rbd
        size, created = store.open_lun(rbd, size)
    elif device is not None:
        path = Path(os.path.abspath(device))
        if not path.exists() or not stat.S_ISBLK(path.stat().st_mode):
            raise ValidationError(f"{device} is not a block device")
        if size is not None:
            raise ValidationError("--size applies to --file only (a device has its own size)")
        kind, size, created = LunKind.DEVICE, device_size(path), False
    else:
        path = Path(os.path.abspath(file))
        kind = LunKind.FILE
        size, created = _check_file(path, size)
    try:
        with inventory.transaction() as db:
            clash = (db.execute("SELECT 'client ' || mac FROM luns WHERE path = ?",
                                (str(path),)).fetchone()
                     or db.execute("SELECT 'client ' || mac FROM clients WHERE lun_path = ?",
                                   (str(path),)).fetchone()
                     or db.execute("SELECT 'SAN host ' || host FROM host_luns WHERE path = ?",
                                   (str(path),)).fetchone())
            if clash:
                raise Conflict(f"{path} already backs a LUN of {clash[0]}")
            number = db.execute(f"SELECT coalesce(max(lun) + 1, ?) FROM {owner.table} "
                                f"WHERE {owner.column} = ?",
                                (owner.first_lun, owner.key)).fetchone()[0]
            if owner.kind is OwnerKind.CLIENT and number >= LOWER_LUN:
                raise Conflict(f"{owner} has LUNs up to {number - 1}: LUN {LOWER_LUN} is "
                               "kept for an overlay client's lower layer")
            record = LunRecord(owner.key, number, str(path), kind, size, time.time())
            db.execute(f"INSERT INTO {owner.table} ({owner.column}, lun, path, kind, size, "
                       "created) VALUES (?, ?, ?, ?, ?, ?)",
                       (owner.key, number, record.path, kind.value, size, record.created))
    except BaseException:
        if created and store is not None and rbd is not None:
            store.remove(rbd)
        elif created and isinstance(path, Path):
            path.unlink(missing_ok=True)
        raise
    return record


def remove_lun(inventory: Inventory, owner: LunOwner, number: int) -> LunRecord:
    """Forget LUN ``number`` of ``owner`` (its file or device is left as it is)."""
    if owner.kind is OwnerKind.CLIENT and number == ROOT_LUN:
        raise ValidationError(f"LUN {ROOT_LUN} is the client's root; "
                              "`netboot client remove` removes it")
    with inventory.transaction() as db:
        row = db.execute(f"SELECT {owner.column} AS owner, lun, path, kind, size, created "
                         f"FROM {owner.table} WHERE {owner.column} = ? AND lun = ?",
                         (owner.key, number)).fetchone()
        if row is None:
            raise NotFound(f"{owner} has no LUN {number}")
        db.execute(f"DELETE FROM {owner.table} WHERE {owner.column} = ? AND lun = ?",
                   (owner.key, number))
    return LunRecord.from_row(row)
