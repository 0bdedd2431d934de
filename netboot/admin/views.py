"""Records as JSON: one shape for the CLI's ``--json`` and the admin API, so a script
reads the same fields from either."""

from __future__ import annotations

import time
from dataclasses import asdict

from netboot.config import Config
from netboot.inventory.bmcs import find_bmc
from netboot.inventory.clients import Client
from netboot.inventory.luns import extra_luns
from netboot.inventory.servers import portal_holder
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory
from netboot.inventory.timeline import SHOWN_BOOTS, Boot, split_boots
from netboot.power.bmc import Bmc
from netboot.provisioning.chap import mask
from netboot.storage.backend import store_of
from netboot.storage.images import Image
from netboot.storage.location import Location


def used_bytes(config: Config, client: Client) -> int | None:
    """Bytes the root LUN really takes (its own: a reflinked or RBD clone shares the rest)."""
    if not client.lun_path:
        return None
    location = Location.parse(client.lun_path)
    return store_of(config, location).allocated(location)


def client_json(config: Config, client: Client, show_secrets: bool) -> dict[str, object]:
    """A client record; its CHAP secrets masked unless ``show_secrets``."""
    data = asdict(client)
    data["ip"] = str(client.ip)
    data["lun_used"] = used_bytes(config, client)
    if client.lun_path:
        location = Location.parse(client.lun_path)
        data["root"] = {"store": location.store.value, "name": location.name}
    if not show_secrets:
        data["chap_secret"] = mask(client.chap_secret)
        data["mutual_secret"] = mask(client.mutual_secret)
    return data


def bmc_json(bmc: Bmc | None, show_secrets: bool) -> dict[str, object] | None:
    """A client's BMC (None: it has none); its password masked unless ``show_secrets``."""
    if bmc is None:
        return None
    return {"url": bmc.url, "kind": bmc.kind.value, "address": bmc.address, "port": bmc.port,
            "username": bmc.username,
            "password": bmc.password if show_secrets else mask(bmc.password),
            "tls": bmc.trust and bmc.trust.value}


def client_detail_json(config: Config, inventory: Inventory, client: Client,
                       show_secrets: bool) -> dict[str, object]:
    """``client show --json`` and ``GET /api/v1/clients/<mac>``: the record, its extra LUNs,
    the portal it logs in to (and which server holds it) and its BMC."""
    address, port = config.portal
    holder = portal_holder(inventory.servers(), time.time())
    data = client_json(config, client, show_secrets)
    # each keyed "mac", as before LUN records could be a SAN host's too
    data["extra_luns"] = [{"mac": r.owner, **{k: v for k, v in asdict(r).items()
                                               if k != "owner"}}
                          for r in extra_luns(inventory, client.mac)]
    data["portal"] = {"address": f"{address}:{port}", "held_by": holder.name if holder else None}
    data["bmc"] = bmc_json(find_bmc(inventory, client.mac), show_secrets)
    return data


def image_json(image: Image) -> dict[str, object]:
    """One version of an image (``image list --json``, ``GET /api/v1/images``)."""
    return {"image": image.ref, "name": image.name, "version": image.version,
            "location": str(image.location), "size": image.size, "used": image.used,
            "created": image.created, "made": image.made, "clients": list(image.clients),
            "layout": image.layout.value}


def boot_json(boot: Boot) -> dict[str, object]:
    """One boot: when it started and the seconds from then to each stage it reached."""
    return {"started": boot.started,
            "stages": [{"stage": stage.value, "at": at, "seconds": at - boot.started}
                       for stage, at in boot.reached]}


def status_json(inventory: Inventory, now: float) -> dict[str, object]:
    """``netboot status --json`` and ``GET /api/v1/status``: each client's last stage and
    its last boots, the servers sharing the inventory and which holds the portal."""
    logs = inventory.stage_log()
    servers = inventory.servers()
    holder = portal_holder(servers, now)
    return {
        "stages": [s.value for s in Stage],
        "clients": [{"mac": c.mac, "hostname": c.hostname, "ip": str(c.ip), "image": c.image,
                     "booted_image": c.booted_image,
                     "boot_method": c.boot_method.value, "stage": c.last_stage,
                     "stage_at": c.last_stage_at, "last_seen": c.last_seen,
                     "root": c.lun_path,
                     "boots": [boot_json(b)
                               for b in split_boots(logs.get(c.mac, []))[-SHOWN_BOOTS:]]}
                    for c in inventory.clients()],
        "unknown_machines": len(inventory.unknown_machines()),
        "servers": [{"name": s.name, "address": str(s.address), "state": s.liveness(now),
                     "portal": s.portal, "dynamic_range": [str(s.range_start),
                                                           str(s.range_end)],
                     "started": s.started, "seen": s.seen, "stopped": s.stopped}
                    for s in servers],
        "portal_holder": holder.name if holder else None,
        "now": now,
    }
