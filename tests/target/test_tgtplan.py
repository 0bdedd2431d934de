"""``show`` report parsing and reconcile planning, on real captured output, without a daemon."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from netboot.storage.location import Store
from netboot.target.model import Account, Login, Lun, TargetSpec
from netboot.target.tgtmgmt import GLOBAL_TID, Mode, Operation, Param
from netboot.target.tgtplan import Observed, Op, fingerprint, lun_identity, plan
from netboot.target.tgtshow import (
    Connection,
    find_targets,
    parse_accounts,
    parse_connections,
    parse_global_accounts,
    parse_logins,
    parse_portal_ports,
    parse_targets,
)

DATA = Path(__file__).parent / "data"
AUTH = "iqn.2026-11.org.example"
ALPHA = Account("alpha", "alphaSecret00001")
ALPHA_OUT = Account("alpha-target", "alphaMutual00001")
BETA = Account("beta", "betaSecret000001")
BETA_OUT = Account("beta-target", "betaMutual000001")
GAMMA = Account("gamma", "gammaSecret00001")


def spec(name: str, incoming: Account, outgoing: Account | None, *luns: str) -> TargetSpec:
    return TargetSpec(iqn=f"{AUTH}:target:{name}", mac="52:54:00:00:00:01",
                      luns=tuple(Lun(n, p) for n, p in enumerate(luns, start=1)),
                      initiators=(f"{AUTH}:initiator:{name}",), incoming=incoming,
                      outgoing=outgoing)


ALPHA_SPEC = spec("alpha", ALPHA, ALPHA_OUT, "/tmp/nbsmoke/state/luns/alpha.img",
                  "/tmp/nbsmoke/extra.raw")
BETA_SPEC = spec("beta", BETA, BETA_OUT, "/tmp/nbsmoke/state/luns/beta.img")
KNOWN = {a.user: fingerprint(a) for a in (ALPHA, ALPHA_OUT, BETA, BETA_OUT)}


@pytest.fixture
def observed() -> Observed:
    """tgtd as captured from a live daemon: alpha (with a session, LUNs 1-2) and beta."""
    targets = parse_targets((DATA / "show-target.txt").read_text())
    discovery, out = parse_global_accounts((DATA / "show-system.txt").read_text())
    return Observed(tuple(targets), tuple(parse_accounts((DATA / "show-account.txt")
                                                         .read_text())), tuple(discovery), out)


def kinds(ops: list[Op]) -> list[str]:
    return [op.what for op in ops]


def test_parse_targets_reads_luns_acl_accounts_and_sessions(observed: Observed) -> None:
    alpha, beta = (t.state for t in observed.targets)
    assert alpha.iqn == f"{AUTH}:target:alpha"
    assert alpha.luns == ALPHA_SPEC.luns
    assert alpha.initiators == (f"{AUTH}:initiator:alpha",)
    assert (alpha.incoming, alpha.outgoing) == (("alpha",), "alpha-target")
    assert (alpha.sessions, beta.sessions) == (1, 0)
    assert [t.tid for t in observed.targets] == [1, 2]


def test_parse_targets_reads_who_is_logged_in_and_from_where(observed: Observed) -> None:
    alpha, beta = (t.state for t in observed.targets)
    assert alpha.logins == (Login(f"{AUTH}:initiator:alpha", "127.0.0.1"),)
    assert beta.logins == ()


def test_parse_targets_reads_two_sessions_of_one_initiator() -> None:
    """Captured with two libiscsi sessions (iscsi-perf) open to alpha at once."""
    alpha, beta = (t.state for t in parse_targets((DATA / "show-target-logins.txt").read_text()))
    assert alpha.logins == (Login(f"{AUTH}:initiator:alpha", "127.0.0.1"),) * 2
    assert (alpha.sessions, beta.sessions) == (2, 0)


def test_parse_targets_reads_each_sessions_nexus_and_connection_to_close() -> None:
    alpha, beta = parse_targets((DATA / "show-target-logins.txt").read_text())
    assert alpha.connections == (Connection(1, 0), Connection(2, 0))
    assert beta.connections == ()


def test_parse_connections_reads_each_connection_of_one_target_and_who_holds_it() -> None:
    """Captured with two libiscsi sessions (iscsi-perf) open to one target: what a boot
    window lists (``--mode conn --op show --tid N``) to close."""
    holder = Login("iqn.2026-01.org.example:init1", "127.0.0.1")
    assert parse_connections((DATA / "show-conn.txt").read_text()) == [
        (Connection(2, 0), holder), (Connection(1, 0), holder)]


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("show-target*.txt")))
def test_parse_logins_reads_the_same_sessions_as_parse_targets(name: str) -> None:
    """The login watch's quick read of a report, against the whole parse, on each capture."""
    text = (DATA / name).read_text()
    assert parse_logins(text) == {t.state.iqn: t.state.logins for t in parse_targets(text)
                                  if t.state.logins}


def test_parse_logins_finds_a_later_targets_sessions() -> None:
    """The capture's blocks swapped: alpha, logged in, now comes after idle beta."""
    text = (DATA / "show-target-logins.txt").read_text()
    alpha, beta = re.split(r"^(?=Target \d+: )", text, flags=re.MULTILINE)[1:]
    assert parse_logins(beta + alpha) == parse_logins(text) != {}


def test_find_targets_parses_the_targets_asked_for_out_of_a_whole_report() -> None:
    text = (DATA / "show-target-logins.txt").read_text()
    alpha, beta = parse_targets(text)
    assert find_targets(text, {f"{AUTH}:target:beta"}) == {beta.state.iqn: beta}
    assert find_targets(text, {alpha.state.iqn, beta.state.iqn, f"{AUTH}:target:gamma"}) == {
        alpha.state.iqn: alpha, beta.state.iqn: beta}


def test_parse_targets_reads_no_login_when_nobody_is_logged_in() -> None:
    """The same tgtd captured before anyone logged in."""
    found = parse_targets((DATA / "show-target-idle.txt").read_text())
    assert [t.state.logins for t in found] == [(), ()]


def test_parse_accounts_lists_every_user(observed: Observed) -> None:
    assert sorted(observed.accounts) == ["alpha", "alpha-target", "beta", "beta-target"]


def test_parse_global_accounts_keeps_slot_order(observed: Observed) -> None:
    assert (observed.discovery, observed.discovery_out) == (("alpha", "beta"), None)


def test_parse_global_accounts_without_discovery_accounts() -> None:
    text = "System:\n    State: ready\nDevice types:\n    disk\niSNS:\n    iSNS=Off\n"
    assert parse_global_accounts(text) == ([], None)


def test_plan_for_matching_state_is_empty(observed: Observed) -> None:
    assert plan(observed, [ALPHA_SPEC, BETA_SPEC], discovery=[ALPHA, BETA], prune=True,
                known=KNOWN) == []


def test_new_target_gets_chap_before_its_acl(observed: Observed) -> None:
    gamma = spec("gamma", GAMMA, None, "/luns/gamma.img")
    ops = kinds(plan(observed, [ALPHA_SPEC, BETA_SPEC, gamma], known=KNOWN))
    assert ops == [
        "create account gamma",
        f"create target {AUTH}:target:gamma",
        f"add LUN 1 (/luns/gamma.img) to {AUTH}:target:gamma",
        f"set the SCSI id of LUN 1 of {AUTH}:target:gamma",
        f"bind account gamma to {AUTH}:target:gamma",
        f"admit initiator {AUTH}:initiator:gamma to {AUTH}:target:gamma",
    ]


def test_new_target_takes_the_next_free_tid(observed: Observed) -> None:
    gamma = spec("gamma", GAMMA, None, "/luns/gamma.img")
    create = next(op for op in plan(observed, [gamma], known=KNOWN) if "create target" in op.what)
    assert create.request.tid == 3


def replay_discovery(slots: list[str], ops: list[Op]) -> list[str]:
    """Apply the plan's global-target binds to a model of tgt's slots; refuse a gap."""
    slots = list(slots)
    for op in ops:
        request = op.request
        if request.mode is not Mode.ACCOUNT or request.tid != GLOBAL_TID:
            continue
        user = dict(request.params)[Param.USER]
        if request.op is Operation.UNBIND:
            assert slots[-1] == user, f"{op.what}: not the last slot, tgtd would crash"
            slots.pop()
        elif request.op is Operation.BIND:
            slots.append(user)
    return slots


def test_removed_client_leaves_discovery_without_a_gap(observed: Observed) -> None:
    ops = plan(observed, [BETA_SPEC], remove=[ALPHA_SPEC.iqn], discovery=[BETA], prune=True,
               known=KNOWN)
    assert replay_discovery(list(observed.discovery), ops) == ["beta"]
    assert "delete account alpha" in kinds(ops)
    assert f"delete target {ALPHA_SPEC.iqn}" in kinds(ops)


def test_removed_target_with_a_session_closes_its_connection_before_the_delete(
        observed: Observed) -> None:
    ops = plan(observed, [BETA_SPEC], remove=[ALPHA_SPEC.iqn], discovery=[BETA], prune=True,
               known=KNOWN)
    close = next(op for op in ops if op.request.mode is Mode.CONNECTION)
    assert close.request.op is Operation.DELETE
    assert (close.request.tid, close.request.sid, close.request.cid) == (1, 1, 0)
    assert close.done_if  # a connection that ended meanwhile is no failure
    assert ops.index(close) < kinds(ops).index(f"delete target {ALPHA_SPEC.iqn}")


def test_removed_target_names_its_initiators_addresses_for_a_reset(observed: Observed) -> None:
    ops = plan(observed, [BETA_SPEC], remove=[ALPHA_SPEC.iqn], known=KNOWN)
    delete = next(op for op in ops if op.what == f"delete target {ALPHA_SPEC.iqn}")
    assert delete.peers == ("127.0.0.1",)


def test_portal_report_gives_each_listening_port() -> None:
    # usr/iscsi/target.c iscsi_target_show_portals: "Portal: %s%s%s:%d,%d", IPv6 bracketed
    text = "Portal: 198.18.0.1:3260,1\nPortal: [fd00:198:18::1]:3261,1\n"
    assert parse_portal_ports(text) == {3260, 3261}


def test_changed_secret_closes_the_acl_until_chap_is_back(observed: Observed) -> None:
    renewed = Account("alpha", "anotherSecret001")
    changed = TargetSpec(**{**ALPHA_SPEC.__dict__, "incoming": renewed})
    ops = kinds(plan(observed, [changed, BETA_SPEC], discovery=[renewed, BETA], known=KNOWN))
    close = ops.index(f"close {ALPHA_SPEC.iqn} to {AUTH}:initiator:alpha while its CHAP changes")
    assert close < ops.index("delete account alpha") < ops.index("create account alpha")
    assert (ops.index("create account alpha")
            < ops.index(f"bind account alpha to {ALPHA_SPEC.iqn}")
            < ops.index(f"admit initiator {AUTH}:initiator:alpha to {ALPHA_SPEC.iqn}"))


def test_unknown_secret_is_set_again(observed: Observed) -> None:
    ops = kinds(plan(observed, [ALPHA_SPEC, BETA_SPEC], discovery=[ALPHA, BETA], known={}))
    assert ops.count("create account alpha") == 1 and ops.count("create account beta") == 1


def test_changed_lun_path_is_replaced(observed: Observed) -> None:
    moved = spec("beta", BETA, BETA_OUT, "/elsewhere/beta.img")
    ops = kinds(plan(observed, [moved], known=KNOWN))
    assert ops == [f"delete LUN 1 of {moved.iqn}",
                   f"add LUN 1 (/elsewhere/beta.img) to {moved.iqn}",
                   f"set the SCSI id of LUN 1 of {moved.iqn}"]


def test_a_lun_replaced_under_a_session_closes_its_connection_first(
        observed: Observed) -> None:
    moved = spec("alpha", ALPHA, ALPHA_OUT, "/elsewhere/alpha.img", "/tmp/nbsmoke/extra.raw")
    ops = kinds(plan(observed, [moved], known=KNOWN))
    assert ops.index(f"close connection 0 of session 1 on {moved.iqn}") < ops.index(
        f"delete LUN 1 of {moved.iqn}")


def test_mutual_chap_off_unbinds_the_outgoing_account(observed: Observed) -> None:
    plain = TargetSpec(**{**BETA_SPEC.__dict__, "outgoing": None})
    ops = kinds(plan(observed, [ALPHA_SPEC, plain], discovery=[ALPHA, BETA], prune=True,
                     known=KNOWN))
    assert ops == [f"unbind outgoing account beta-target from {plain.iqn}",
                   "delete account beta-target"]


def test_ensure_of_one_target_deletes_no_other_account(observed: Observed) -> None:
    assert plan(observed, [BETA_SPEC], known=KNOWN) == []


def test_no_secret_reaches_an_operation_description(observed: Observed) -> None:
    ops = plan(observed, [ALPHA_SPEC, BETA_SPEC], discovery=[ALPHA, BETA], known={})
    secrets = {a.secret for a in (ALPHA, ALPHA_OUT, BETA, BETA_OUT)}
    assert any(op.request.secret in secrets for op in ops)
    assert not any(s in op.what or s in repr(op) for op in ops for s in secrets)


def test_parse_targets_reads_an_rbd_backed_lun() -> None:
    target = parse_targets((DATA / "show-target-rbd.txt").read_text())[1]
    assert target.state.luns == (Lun(1, "netboot/root.node-525400000099", Store.RBD),)


RBD_OPTIONS = "conf=/etc/ceph/ceph.conf;id=netboot"


def test_an_rbd_lun_is_added_through_bs_rbd_with_its_options(observed: Observed) -> None:
    moved = TargetSpec(**{**BETA_SPEC.__dict__,
                          "luns": (Lun(1, "netboot/root.beta", Store.RBD),)})
    ops = plan(observed, [moved], known=KNOWN, rbd_options=RBD_OPTIONS)
    assert kinds(ops) == [f"delete LUN 1 of {moved.iqn}",
                          f"add LUN 1 (rbd:netboot/root.beta) to {moved.iqn}",
                          f"set the SCSI id of LUN 1 of {moved.iqn}"]
    assert ops[1].request.params == ((Param.PATH, "netboot/root.beta"),
                                     (Param.BSTYPE, "rbd"), (Param.BSOPTS, RBD_OPTIONS))


def test_an_rbd_lun_in_place_is_left_alone() -> None:
    observed = Observed(tuple(parse_targets((DATA / "show-target-rbd.txt").read_text())), (),
                        ())
    target = observed.targets[1].state
    same = TargetSpec(iqn=target.iqn, mac="52:54:00:00:00:99", luns=target.luns,
                      initiators=target.initiators, incoming=Account("x", "y"))
    assert not [op for op in plan(observed, [same], known={}) if op.request.mode is Mode.DEVICE]


def test_an_rbd_snapshot_lun_read_only_in_place_is_left_alone() -> None:
    """bs_rbd's show reports the path it was given, ``POOL/IMAGE@SNAP``: an overlay client's
    lower layer on RBD reads back as the LUN reconcile asks for."""
    text = (DATA / "show-target-rbd.txt").read_text().replace(
        "Readonly: No\n            SWP: No\n            Thin-provisioning: No\n"
        "            Backing store type: rbd\n"
        "            Backing store path: netboot/root.node-525400000099",
        "Readonly: Yes\n            SWP: No\n            Thin-provisioning: No\n"
        "            Backing store type: rbd\n"
        "            Backing store path: netboot/image.builtin@v2")
    observed = Observed(tuple(parse_targets(text)), (), ())
    target = observed.targets[1].state
    assert target.luns == (Lun(1, "netboot/image.builtin@v2", Store.RBD, readonly=True),)
    same = TargetSpec(iqn=target.iqn, mac="52:54:00:00:00:99", luns=target.luns,
                      initiators=target.initiators, incoming=Account("x", "y"))
    assert not [op for op in plan(observed, [same], known={}) if op.request.mode is Mode.DEVICE]


def test_a_lun_has_the_same_scsi_identity_whatever_its_tid(observed: Observed) -> None:
    gamma = spec("gamma", GAMMA, None, "/luns/gamma.img")
    alone = plan(Observed((), (), ()), [gamma], known={})
    beside = plan(observed, [ALPHA_SPEC, BETA_SPEC, gamma], known=KNOWN)
    identify = [[op.request for op in ops if op.request.op is Operation.UPDATE]
                for ops in (alone, beside)]
    assert identify[0][0].tid != identify[1][0].tid
    scsi_id, scsi_sn = lun_identity(gamma.iqn, 1)
    assert identify[0][0].params == identify[1][0].params == (
        (Param.SCSI_ID, scsi_id), (Param.SCSI_SN, scsi_sn))


DISCOVERY_OUT = Account("netboot_discovery", "discoveryOut0001")


def test_discovery_out_is_created_then_bound_as_the_global_outgoing_account(
        observed: Observed) -> None:
    ops = plan(observed, [ALPHA_SPEC, BETA_SPEC], discovery=[ALPHA, BETA],
               discovery_out=DISCOVERY_OUT, prune=True, known=KNOWN)
    assert kinds(ops) == ["create account netboot_discovery",
                          "bind outgoing account netboot_discovery to discovery"]
    bind = ops[-1].request
    assert (bind.op, bind.tid, bind.outgoing) == (Operation.BIND, GLOBAL_TID, True)


def test_discovery_out_in_place_is_left_alone(observed: Observed) -> None:
    bound = replace(observed, accounts=(*observed.accounts, DISCOVERY_OUT.user),
                    discovery_out=DISCOVERY_OUT.user)
    known = {**KNOWN, DISCOVERY_OUT.user: fingerprint(DISCOVERY_OUT)}
    assert plan(bound, [ALPHA_SPEC, BETA_SPEC], discovery=[ALPHA, BETA],
                discovery_out=DISCOVERY_OUT, prune=True, known=known) == []


def test_discovery_out_no_longer_wanted_is_unbound_then_deleted(observed: Observed) -> None:
    bound = replace(observed, accounts=(*observed.accounts, DISCOVERY_OUT.user),
                    discovery_out=DISCOVERY_OUT.user)
    ops = plan(bound, [ALPHA_SPEC, BETA_SPEC], discovery=[ALPHA, BETA], prune=True,
               known=KNOWN)
    assert kinds(ops) == ["unbind outgoing account netboot_discovery from discovery",
                          "delete account netboot_discovery"]


def test_ensure_of_one_target_leaves_discovery_out_alone(observed: Observed) -> None:
    bound = replace(observed, accounts=(*observed.accounts, DISCOVERY_OUT.user),
                    discovery_out=DISCOVERY_OUT.user)
    assert plan(bound, [ALPHA_SPEC], known=KNOWN) == []


# Two overlay clients as a live tgtd showed them (tests/target/test_tgt_live.py): LUN 1 each
# one's upper layer, LUN 255 the one image file, read-only.
OVERLAY_IMAGE = "/tmp/nbsmoke/state/images/builtin@1.img"


def overlay_spec(name: str) -> TargetSpec:
    host = f"node-5254001234{name}"
    return TargetSpec(iqn=f"{AUTH}:target:{host}", mac=f"52:54:00:12:34:{name}",
                      luns=(Lun(1, f"/tmp/nbsmoke/state/luns/{host}.img"),
                            Lun(255, OVERLAY_IMAGE, readonly=True)),
                      initiators=(f"{AUTH}:initiator:{host}",),
                      incoming=Account(host, "x" * 16),
                      outgoing=Account(f"{host}-target", "y" * 16))


@pytest.fixture
def overlay_observed() -> Observed:
    targets = parse_targets((DATA / "show-target-overlay.txt").read_text())
    users = tuple(u for t in targets for u in (*t.state.incoming, t.state.outgoing) if u)
    return Observed(tuple(targets), users, ())


def overlay_known(*specs: TargetSpec) -> dict[str, str]:
    return {a.user: fingerprint(a) for s in specs for a in (s.incoming, s.outgoing) if a}


def test_parse_targets_reads_which_luns_are_read_only(overlay_observed: Observed) -> None:
    for target in overlay_observed.targets:
        assert [(lun.number, lun.readonly) for lun in target.state.luns] == [
            (1, False), (255, True)]
        assert target.state.luns[1].path == OVERLAY_IMAGE


def test_an_overlay_target_as_tgtd_shows_it_needs_nothing(overlay_observed: Observed) -> None:
    specs = [overlay_spec("01"), overlay_spec("02")]
    assert plan(overlay_observed, specs, known=overlay_known(*specs)) == []


def test_a_new_read_only_lun_is_made_read_only_before_the_acl_admits_anyone() -> None:
    spec_ = overlay_spec("01")
    ops = plan(Observed((), (), ()), [spec_], known={})
    whats = kinds(ops)
    readonly = whats.index(f"make LUN 255 of {spec_.iqn} read-only")
    assert whats.index(f"add LUN 255 ({OVERLAY_IMAGE}) to {spec_.iqn}") < readonly
    assert readonly < whats.index(f"admit initiator {spec_.initiators[0]} "
                                  f"to {spec_.iqn}")
    request = ops[readonly].request
    assert (request.mode, request.op, request.lun, request.params) == (
        Mode.DEVICE, Operation.UPDATE, 255, ((Param.READONLY, "1"),))
    assert not any("read-only" in w for w in whats if "LUN 1 " in w)


def test_a_lun_that_lost_its_read_only_flag_gets_it_back_in_place(
        overlay_observed: Observed) -> None:
    first = overlay_observed.targets[0]
    writable = tuple(replace(lun, readonly=False) for lun in first.state.luns)
    observed = replace(overlay_observed, targets=(
        replace(first, state=replace(first.state, luns=writable)),
        *overlay_observed.targets[1:]))
    specs = [overlay_spec("01"), overlay_spec("02")]
    assert kinds(plan(observed, specs, known=overlay_known(*specs))) == [
        f"make LUN 255 of {specs[0].iqn} read-only"]


def test_another_image_version_replaces_the_lower_lun(overlay_observed: Observed) -> None:
    moved = overlay_spec("01")
    newer = "/tmp/nbsmoke/state/images/builtin@2.img"
    moved = replace(moved, luns=(moved.luns[0], Lun(255, newer, readonly=True)))
    specs = [moved, overlay_spec("02")]
    assert kinds(plan(overlay_observed, specs, known=overlay_known(*specs))) == [
        f"delete LUN 255 of {moved.iqn}", f"add LUN 255 ({newer}) to {moved.iqn}",
        f"set the SCSI id of LUN 255 of {moved.iqn}",
        f"make LUN 255 of {moved.iqn} read-only"]
