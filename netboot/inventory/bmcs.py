"""Clients' BMCs: where each machine's power is controlled from, with its credentials.

One row per client in ``bmcs``, removed with the client. The password is kept as
the CHAP secrets are: in the inventory (mode 0600, or the PostgreSQL role's
database), out of every ``repr`` and log, masked wherever it is shown.
"""

from __future__ import annotations

import time

from netboot.errors import NotFound
from netboot.inventory.backend import Row
from netboot.inventory.store import Inventory
from netboot.power.bmc import Bmc, BmcKind

_COLUMNS = ("mac", "kind", "address", "port", "username", "password", "updated")


def _bmc(row: Row) -> Bmc:
    return Bmc(address=str(row["address"]), username=str(row["username"]),
               password=str(row["password"]), port=int(row["port"]),  # type: ignore[arg-type]
               kind=BmcKind(row["kind"]))


def set_bmc(inventory: Inventory, mac: str, bmc: Bmc, now: float | None = None) -> None:
    """Give client ``mac`` this BMC (replacing the one it had); NotFound if no such client."""
    with inventory.transaction() as db:
        if db.execute("SELECT 1 FROM clients WHERE mac = ?", (mac,)).fetchone() is None:
            raise NotFound(f"no client with MAC {mac}")
        db.execute(
            f"INSERT INTO bmcs ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (mac) DO UPDATE SET kind = excluded.kind, address = excluded.address, "
            "port = excluded.port, username = excluded.username, "
            "password = excluded.password, updated = excluded.updated",
            (mac, bmc.kind.value, bmc.address, bmc.port, bmc.username, bmc.password,
             time.time() if now is None else now))


def find_bmc(inventory: Inventory, mac: str) -> Bmc | None:
    """Client ``mac``'s BMC, or None if it has none (or there is no such client)."""
    rows = inventory.query("SELECT * FROM bmcs WHERE mac = ?", (mac,))
    return _bmc(rows[0]) if rows else None


def get_bmc(inventory: Inventory, mac: str) -> Bmc:
    """Client ``mac``'s BMC; NotFound, saying how to give it one, if it has none."""
    inventory.get(mac)  # NotFound for an unknown client
    bmc = find_bmc(inventory, mac)
    if bmc is None:
        raise NotFound(f"client {mac} has no BMC: give it one with "
                       f"'netboot client set {mac} --bmc ipmi://USER@ADDRESS'")
    return bmc


def remove_bmc(inventory: Inventory, mac: str) -> bool:
    """Forget client ``mac``'s BMC; False if it had none."""
    with inventory.transaction() as db:
        return db.execute("DELETE FROM bmcs WHERE mac = ?", (mac,)).rowcount > 0
