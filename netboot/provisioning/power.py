"""Clients' BMCs and their power, by MAC: registering a BMC, and on/off/cycle/status of
several clients at once, each one's outcome (or error) reported on its own.

Every log line carries the client's MAC and names the BMC by its URL, which holds
no password (:attr:`netboot.power.bmc.Bmc.url`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netboot.errors import NetbootError
from netboot.inventory.bmcs import get_bmc, remove_bmc, set_bmc
from netboot.inventory.store import Inventory
from netboot.log import client_log
from netboot.power.bmc import Bmc, BmcError, PowerAction
from netboot.power.control import PowerResult, power

log = logging.getLogger(__name__)


def set_client_bmc(inventory: Inventory, mac: str, bmc: Bmc) -> None:
    """Keep ``bmc`` (with its password) as client ``mac``'s."""
    set_bmc(inventory, mac, bmc)
    client_log(log, mac).info("BMC set to %s", bmc.url)


def remove_client_bmc(inventory: Inventory, mac: str) -> bool:
    """Forget client ``mac``'s BMC; False if it had none (NotFound without the client)."""
    inventory.get(mac)
    removed = remove_bmc(inventory, mac)
    if removed:
        client_log(log, mac).info("BMC removed")
    return removed


@dataclass(frozen=True)
class ClientPower:
    """One client's part of a power command: its BMC's URL and what was done, or why not."""

    mac: str
    bmc: str | None  # the URL, None if it has no BMC (or no record)
    result: PowerResult | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def power_clients(inventory: Inventory, macs: Sequence[str], action: PowerAction,
                  act: Callable[[Bmc, PowerAction], PowerResult] = power) -> list[ClientPower]:
    """Do ``action`` on each client in turn through its BMC; a client that fails is
    reported (and logged) and the rest go on."""
    done = []
    for mac in macs:
        logger = client_log(log, mac, action=action.value)
        bmc = None
        try:
            bmc = get_bmc(inventory, mac)
            result = act(bmc, action)
        except NetbootError as err:
            # a BMC's error names the BMC; the client is named here (a NotFound names it)
            said = f"client {mac}: {err}" if isinstance(err, BmcError) else str(err)
            logger.error("power %s failed: %s", action, err)
            done.append(ClientPower(mac, bmc.url if bmc else None, None, said))
            continue
        logger.info("power %s through %s: %s", action, bmc.url, result.done)
        done.append(ClientPower(mac, bmc.url, result))
    return done
