"""The management socket client against a real tgtd, with the real tgtadm as the reference."""
# ruff: noqa: F811  (pytest fixtures are imported from tgtfixtures and requested by name)

from __future__ import annotations

import re
import secrets
import threading
import time
from pathlib import Path

import pytest

from netboot.target.model import Account, DesiredState, Lun, TargetSpec
from netboot.target.tgt import DISCOVERY_ACCOUNTS_MAX, TgtBackend
from netboot.target.tgtmgmt import Mode, Operation, Param, Request, call
from netboot.target.tgtshow import parse_accounts, parse_targets
from tests.conftest import needs_root
from tests.support.tgtfixtures import (  # noqa: F401  (fixtures)
    Tgtd,
    target_config,
    tgtadm,
    tgtd,
    tgtd_endpoint,
)

pytestmark = [needs_root, pytest.mark.root]

AUTH = "iqn.2026-11.org.example"
PREFIX = f"{AUTH}:target:"


def specs(directory: Path, n: int) -> list[TargetSpec]:
    """``n`` clients' targets: a sparse 1 MiB LUN, an ACL, CHAP and mutual CHAP, fresh secrets."""
    made = []
    for i in range(n):
        lun = directory / f"lun{i}.img"
        with open(lun, "wb") as f:
            f.truncate(1 << 20)
        made.append(TargetSpec(
            iqn=f"{PREFIX}c{i:04d}", mac=f"52:54:00:00:{i // 256:02x}:{i % 256:02x}",
            luns=(Lun(1, str(lun)),), initiators=(f"{AUTH}:initiator:c{i:04d}",),
            incoming=Account(f"c{i:04d}", secrets.token_hex(8)),
            outgoing=Account(f"c{i:04d}-t", secrets.token_hex(8))))
    return made


def desired(targets: list[TargetSpec]) -> DesiredState:
    return DesiredState(PREFIX, tuple(targets),
                        tuple(t.incoming for t in targets[:DISCOVERY_ACCOUNTS_MAX]))


@pytest.fixture
def populated(tgtd: Tgtd, tmp_path: Path) -> Tgtd:
    """A tgtd holding three clients' targets, accounts and discovery bindings."""
    TgtBackend(tgtd.control_port, tmp_path).apply(desired(specs(tmp_path, 3)))
    return tgtd


@pytest.mark.parametrize("mode", [Mode.TARGET, Mode.ACCOUNT, Mode.SYSTEM, Mode.PORTAL],
                         ids=lambda m: m.name.lower())
def test_show_through_the_socket_is_what_tgtadm_prints(populated: Tgtd, mode: Mode) -> None:
    by_socket = call(populated.control_port, Request(mode, Operation.SHOW), what="show")
    by_tgtadm = tgtadm(populated.control_port, "--mode", mode.name.lower(), "--op", "show")
    assert by_socket == by_tgtadm
    assert "c0000" in by_socket or mode is Mode.PORTAL


def test_account_and_target_made_through_the_socket_are_in_tgtd(tgtd: Tgtd) -> None:
    port, user, iqn = tgtd.control_port, ((Param.USER, "made1"),), f"{PREFIX}made1"
    call(port, Request(Mode.ACCOUNT, Operation.NEW, params=user, secret="madeSecret000001"),
         what="create account")
    call(port, Request(Mode.TARGET, Operation.NEW, tid=5, params=((Param.TARGETNAME, iqn),)),
         what="create target")
    call(port, Request(Mode.ACCOUNT, Operation.BIND, tid=5, params=user), what="bind account")
    assert parse_accounts(tgtadm(port, "--mode", "account", "--op", "show")) == ["made1"]
    (made,) = parse_targets(tgtadm(port, "--mode", "target", "--op", "show"))
    assert (made.tid, made.state.iqn, made.state.incoming) == (5, iqn, ("made1",))

    call(port, Request(Mode.TARGET, Operation.DELETE, tid=5, force=True), what="delete target")
    call(port, Request(Mode.ACCOUNT, Operation.DELETE, params=user), what="delete account")
    assert parse_targets(tgtadm(port, "--mode", "target", "--op", "show")) == []
    assert parse_accounts(tgtadm(port, "--mode", "account", "--op", "show")) == []


class ProcWatch(threading.Thread):
    """Reads every readable ``/proc/*/cmdline`` and ``/proc/*/environ`` every ``interval``
    seconds and keeps the secrets found there, as any local user could read them."""

    def __init__(self, secrets_: set[str], interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self._pattern = re.compile(b"|".join(re.escape(s.encode()) for s in secrets_))
        self._interval = interval
        self._done = threading.Event()
        self.found: set[str] = set()
        self.rounds = 0
        self.pids: set[str] = set()

    def run(self) -> None:
        while not self._done.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                self.pids.add(proc.name)
                for name in ("cmdline", "environ"):
                    try:
                        data = (proc / name).read_bytes()
                    except OSError:
                        continue  # gone, or not readable
                    self.found.update(m.decode() for m in self._pattern.findall(data))
            self.rounds += 1
            time.sleep(self._interval)

    def __enter__(self) -> ProcWatch:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self.join()


def test_no_secret_is_readable_in_any_process_while_200_targets_are_set_up(
        tgtd: Tgtd, tmp_path: Path) -> None:
    targets = specs(tmp_path, 200)
    all_secrets = {a.secret for t in targets for a in (t.incoming, t.outgoing) if a}
    backend = TgtBackend(tgtd.control_port, tmp_path)
    with ProcWatch(all_secrets) as watch:
        outcome = backend.apply(desired(targets))
        time.sleep(0.05)  # at least a few rounds after the last request
    assert not outcome.failed
    assert len(backend.targets()) == 200
    assert watch.rounds >= 3
    assert watch.found == set()
