"""The inventory tests run on both stores: SQLite (the default) and PostgreSQL.

A test that asks for ``store`` (directly or through ``store_config``,
``config`` or ``inventory``) runs once per store, unless marked
``sqlite_only``; the PostgreSQL run gets a database of its own
(tests.support.postgres) and skips, saying why, where that server cannot run.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator

import pytest

from netboot.config import Config
from netboot.inventory.store import Inventory, open_inventory
from tests.support.postgres import inventory_yaml

STORES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("store", STORES[:1] if only else STORES, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_config(request: pytest.FixtureRequest, store: str,
                 make_config: Callable[..., Config]) -> Callable[..., Config]:
    """``make_config`` with the inventory of the store under test."""
    section = inventory_yaml(request, store)

    def make(extra: str = "", base: str | None = None) -> Config:
        return make_config(section + textwrap.dedent(extra), base=base)

    return make


@pytest.fixture
def config(store_config: Callable[..., Config]) -> Config:
    """The minimal config on the store under test."""
    return store_config()


@pytest.fixture
def inventory(config: Config) -> Iterator[Inventory]:
    """An empty inventory on the store under test."""
    with open_inventory(config) as inv:
        yield inv
