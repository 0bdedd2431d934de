"""Fixtures for tests that boot real QEMU VMs on the lab's boot VLAN.

Every test here needs root (namespaces, taps, servers on port 67/69) and is
skipped with that reason otherwise. A failing test's report carries the
serial console of each VM it started. Boot times are collected with
``record_boot`` and printed at the end of the run (figures, not assertions).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from netboot.lab import lab, topology
from netboot.lab.kernel import fetch_kernel
from netboot.lab.vm import Accel, VmFactory, choose_accel
from tests.support.paths import LAB_CACHE, make_reachable

# The session's shared Ceph cluster (ceph_cluster, ceph_attach) and PostgreSQL server: one
# plugin each for both test folders, so a run of both makes one of each.
pytest_plugins = ("tests.support.ceph", "tests.support.postgres")

# Ample for one TCG boot on two shared cores (8-30 s measured); a limit, not a speed check.
BOOT_TIMEOUT = 180.0
SERIAL_TAIL = 200  # lines of each console shown for a failed test

_BOOTS: list[tuple[str, str, float]] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="needs root: creates network namespaces and taps and boots "
                            "QEMU VMs on them (CI runs as root)")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.qemu)
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    factory = getattr(item, "funcargs", {}).get("vms")
    if report.failed and isinstance(factory, VmFactory):
        for vm in factory.vms:
            text = vm.serial_log.read_text(errors="replace") if vm.serial_log.exists() else ""
            lines = text.splitlines()[-SERIAL_TAIL:]
            report.sections.append((f"serial console of {vm.spec.name} ({vm.serial_log})",
                                    "\n".join(lines) or "(nothing on the console)"))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _BOOTS:
        terminalreporter.section("lab boot times (seconds from VM start)")
        for test, what, seconds in _BOOTS:
            terminalreporter.write_line(f"{seconds:7.2f}  {what}  [{test}]")


@pytest.fixture(scope="session")
def boot_timeout() -> float:
    """Seconds a test waits for one boot's marker."""
    return BOOT_TIMEOUT


@pytest.fixture
def record_boot(request: pytest.FixtureRequest) -> Callable[[str, float], None]:
    """``record_boot("BIOS to marker", 7.8)``: printed in the run's summary."""

    def record(what: str, seconds: float) -> None:
        _BOOTS.append((request.node.name, what, seconds))
        request.node.user_properties.append((what, seconds))

    return record


@pytest.fixture(scope="session")
def accel(tmp_path_factory: pytest.TempPathFactory) -> Accel:
    """KVM if a probe boot shows it runs the iPXE ROM, else TCG (probed once per run)."""
    return choose_accel(tmp_path_factory.mktemp("kvm-probe"))


@pytest.fixture(scope="session")
def lab_cache() -> Path:
    """Downloads kept between runs (kernel .debs, mmdebstrap tarballs): LAB_CACHE."""
    return LAB_CACHE


@pytest.fixture(scope="session")
def kernel() -> Path:
    """The Debian cloud kernel, fetched with apt into the lab cache once."""
    return fetch_kernel(LAB_CACHE)


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[[int], topology.Topology]]:
    """``make_lab(taps)``: a boot VLAN in tmp_path, removed after the test whatever happens."""
    with ExitStack() as stack:
        labs = iter(range(1000))

        def make(taps: int) -> topology.Topology:
            lab_dir = tmp_path / f"lab{next(labs)}"
            return stack.enter_context(topology.boot_vlan(lab_dir, taps))

        yield make


@pytest.fixture
def vms(tmp_path: Path) -> Iterator[VmFactory]:
    """Starts VMs with serial logs in tmp_path/vms; stops them all after the test."""
    factory = VmFactory(tmp_path / "vms")
    yield factory
    factory.stop_all()


@pytest.fixture
def netboot_lab(tmp_path: Path, accel: Accel) -> Iterator[Callable[..., lab.LabState]]:
    """``netboot_lab(clients=1, **up_options)``: `netboot lab up` in tmp_path, down afterwards.

    The real thing: tgtd and `netboot serve` in the VLAN, clients added with
    the CLI. ``lab.boot(state_dir)`` or the VM factory then boots them.
    """
    lab_dir = tmp_path / "netboot-lab"
    make_reachable(tmp_path)  # so the lab's serve splits (netboot.lab.lab.serve_user)

    def make(clients: int = 1, **options: object) -> lab.LabState:
        return lab.up(lab_dir, clients, accel=accel, cache_dir=LAB_CACHE,
                      say=lambda _: None, **options)  # type: ignore[arg-type]

    yield make
    lab.down(lab_dir)


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory,
               accel: Accel) -> Iterator[tuple[Path, lab.LabState]]:
    """One `netboot lab up` with two clients for a whole test module (making one takes ~30 s).

    Tests sharing it compare before and after (boot counts), never absolute values.
    """
    lab_dir = tmp_path_factory.mktemp("shared-lab")
    make_reachable(lab_dir)  # so the lab's serve splits (netboot.lab.lab.serve_user)
    try:
        yield lab_dir, lab.up(lab_dir, 2, accel=accel, cache_dir=LAB_CACHE, say=lambda _: None)
    finally:
        lab.down(lab_dir)
