"""``/metrics`` in Prometheus's text format (PyPI ``prometheus-client`` writes it).

Two sources, read when scraped: the counters every serve process publishes
(:mod:`netboot.counters`: DHCP, TFTP, HTTP, reconciles, the target's sessions),
and the inventory (clients, the stage each reached, when each was last seen, the
seconds to each stage of its last boot). Names follow Prometheus's conventions: a
``netboot_`` prefix, ``_total`` on counters, base units (seconds, bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from netboot.counters import Kind, Sample
from netboot.inventory.stages import ORDER, Stage
from netboot.inventory.store import Inventory
from netboot.inventory.timeline import split_boots

PREFIX = "netboot_"
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Sources:
    """Where a scrape reads from: the processes' counters and the inventory."""

    counters: Callable[[], list[Sample]]
    inventory: Callable[[], Inventory]  # a context manager: opened per scrape, closed after


def counter_families(samples: Iterable[Sample]) -> Iterator[Metric]:
    """The published samples as metric families, one per name."""
    families: dict[str, Metric] = {}
    for s in samples:
        family = families.get(s.name)
        if family is None:
            labels = [k for k, _ in s.labels]
            family = (CounterMetricFamily if s.kind is Kind.COUNTER else GaugeMetricFamily)(
                PREFIX + s.name, s.help, labels=labels)
            families[s.name] = family
        family.add_metric([v for _, v in s.labels], s.value)
    yield from families.values()


def fleet_families(inventory: Inventory) -> Iterator[Metric]:
    """Per client: the stage it last reached, when it was last seen, and the seconds from
    its last boot's start to each stage; and the inventory's size."""
    clients = inventory.clients()
    logs = inventory.stage_log()
    yield GaugeMetricFamily(PREFIX + "clients", "Clients registered in the inventory",
                            value=len(clients))
    yield GaugeMetricFamily(PREFIX + "unknown_machines",
                            "Unregistered machines that asked to boot",
                            value=len(inventory.unknown_machines()))
    stage = GaugeMetricFamily(PREFIX + "client_stage",
                              "1 for the stage each client last reached",
                              labels=["mac", "hostname", "stage"])
    stage_index = GaugeMetricFamily(
        PREFIX + "client_stage_index", "How far each client got: the place of its last stage "
        f"in {', '.join(s.value for s in ORDER)} (from 1), 0 for none, -1 for failed",
        labels=["mac", "hostname"])
    seen = GaugeMetricFamily(PREFIX + "client_last_seen_timestamp_seconds",
                             "When each client was last seen (Unix time)",
                             labels=["mac", "hostname"])
    seconds = GaugeMetricFamily(PREFIX + "client_last_boot_stage_seconds",
                                "Seconds from the start of each client's last boot to each "
                                "stage it reached", labels=["mac", "hostname", "stage"])
    for c in clients:
        if c.last_stage is not None:
            stage.add_metric([c.mac, c.hostname, c.last_stage.value], 1)
        stage_index.add_metric([c.mac, c.hostname], _index(c.last_stage))
        if c.last_seen is not None:
            seen.add_metric([c.mac, c.hostname], c.last_seen)
        boots = split_boots(logs.get(c.mac, []))
        if boots:
            for reached, at in boots[-1].seconds().items():
                seconds.add_metric([c.mac, c.hostname, reached.value], at)
    yield from (stage, stage_index, seen, seconds)


def _index(stage: Stage | None) -> int:
    if stage is None:
        return 0
    return -1 if stage is Stage.FAILED else ORDER.index(stage) + 1


class _Collector:
    """prometheus-client's collector protocol over :class:`Sources`."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        yield from counter_families(self.sources.counters())
        with self.sources.inventory() as inventory:
            yield from fleet_families(inventory)


def render(sources: Sources) -> bytes:
    """One scrape's page."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(sources))
    return generate_latest(registry)
