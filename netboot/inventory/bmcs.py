"""Clients' BMCs: where each machine's power is controlled from, with its credentials.

One row per client in ``bmcs``, removed with the client. The password is kept as
the CHAP secrets are: in the inventory (mode 0600, or the PostgreSQL role's
database), out of every ``repr`` and log, masked wherever it is shown. A Redfish BMC's
CA certificate is kept here too (not a file path: every server reading the inventory
checks the BMC the same way).
"""

from __future__ import annotations

import time

from netboot.errors import NotFound
from netboot.inventory.backend import Row
from netboot.inventory.store import Inventory
from netboot.power.bmc import Bmc, BmcKind

_COLUMNS = ("mac", "kind", "address", "port", "username", "password", "system_path", "ca_pem",
            "insecure", "updated")


def _bmc(row: Row) -> Bmc:
    return Bmc(address=str(row["address"]), username=str(row["username"]),
               password=str(row["password"]), port=int(row["port"]),  # type: ignore[arg-type]
               kind=BmcKind(row["kind"]), system=str(row["system_path"]),
               ca_pem=None if row["ca_pem"] is None else str(row["ca_pem"]),
               insecure=bool(row["insecure"]))


def set_bmc(inventory: Inventory, mac: str, bmc: Bmc, now: float | None = None) -> None:
    """Give client ``mac`` this BMC (replacing the one it had); NotFound if no such client."""
    with inventory.transaction() as db:
        if db.execute("SELECT 1 FROM clients WHERE mac = ?", (mac,)).fetchone() is None:
            raise NotFound(f"no client with MAC {mac}")
        db.execute(
            f"INSERT INTO bmcs ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"ON CONFLICT (mac) DO UPDATE SET "
            f"{', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}",
            (mac, bmc.kind.value, bmc.address, bmc.port, bmc.username, bmc.password,
             bmc.system, bmc.ca_pem, int(bmc.insecure), time.time() if now is None else now))


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
                       f"'netboot client set {mac} --bmc ipmi://USER@ADDRESS' (or "
                       "redfish://USER@HOST)")
    return bmc


def remove_bmc(inventory: Inventory, mac: str) -> bool:
    """Forget client ``mac``'s BMC; False if it had none."""
    with inventory.transaction() as db:
        return db.execute("DELETE FROM bmcs WHERE mac = ?", (mac,)).rowcount > 0
