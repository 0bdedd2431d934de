"""The management network the live BMC tests reach their BMCs over: a namespace per module."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Interface

import pytest

from tests.support.bmc import management_network


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[str, IPv4Interface]]:
    with management_network() as net:
        yield net
