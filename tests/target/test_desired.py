"""From inventory records to the desired target state, and the initiator config, without I/O."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from netboot.inventory.clients import BootMethod, Client
from netboot.inventory.hosts import DiscoveryMutual, Host
from netboot.inventory.luns import LOWER_LUN, LunKind, LunRecord
from netboot.provisioning.initiator import initiator_config
from netboot.storage.location import Location, Store, rbd_location
from netboot.target.model import Account, Lun
from netboot.target.reconcile import desired_state, only_secrets_differ

DATA = Path(__file__).parent / "data"


def client(name: str, mac: str, provisioned: bool = True) -> Client:
    return Client(
        mac=mac, hostname=name, ip=IPv4Address("198.18.0.10"), image="builtin",
        lun_path=f"/var/lib/netboot/luns/{name}.img", lun_size=1 << 30,
        initiator_iqn=f"iqn.2026-11.org.example:initiator:{name}",
        target_iqn=f"iqn.2026-11.org.example:target:{name}", chap_user=name,
        chap_secret="Abcdefgh12345678", mutual_secret="Zyxwvuts87654321",
        provisioned=provisioned, created=1_790_000_000.0,
    )


ALPHA = client("alpha", "52:54:00:00:00:01")
DB1 = Host(name="db1", initiator_iqn="iqn.2026-11.org.example:db1",
           target_iqn="iqn.2026-11.org.example:target:db1", chap_user="db1",
           chap_secret="Hostsecret123456", mutual_secret="Hostmutual123456",
           created=1_790_000_000.0)
DB1_LUNS = [LunRecord("db1", n, f"/srv/db1-{n}.raw", LunKind.FILE, 1 << 20, 0.0) for n in (1, 2)]
DISCOVERY_MUTUAL = DiscoveryMutual("netboot_discovery", "Discovery0123456")


def test_each_provisioned_client_gets_its_own_target(make_config) -> None:
    extra = LunRecord(ALPHA.mac, 2, "/srv/data.raw", "file", 1 << 20, 0.0)
    state = desired_state(make_config(), [ALPHA], [extra])
    (target,) = state.targets
    assert target.iqn == ALPHA.target_iqn
    assert target.luns == (Lun(1, ALPHA.lun_path), Lun(2, "/srv/data.raw"))
    assert target.initiators == (ALPHA.initiator_iqn,)
    assert target.incoming == Account("alpha", "Abcdefgh12345678")
    assert target.outgoing == Account("alpha-target", "Zyxwvuts87654321")
    assert state.prefix == "iqn.2026-11.org.example:target:"


def test_client_still_being_provisioned_gets_no_target(make_config) -> None:
    pending = client("beta", "52:54:00:00:00:02", provisioned=False)
    targets = desired_state(make_config(), [ALPHA, pending], []).targets
    assert [t.iqn for t in targets] == [ALPHA.target_iqn]


def test_discovery_accounts_are_the_clients_own(make_config) -> None:
    state = desired_state(make_config(), [ALPHA], [])
    assert state.discovery == (Account("alpha", "Abcdefgh12345678"),)


def test_discovery_auth_off_leaves_discovery_open(make_config) -> None:
    config = make_config("target:\n  discovery_auth: false\n")
    assert desired_state(config, [ALPHA], []).discovery == ()


def test_mutual_chap_off_means_no_outgoing_account(make_config) -> None:
    config = make_config("target:\n  mutual_chap: false\n")
    assert desired_state(config, [ALPHA], []).targets[0].outgoing is None


def test_initiator_config_matches_golden(make_config) -> None:
    config = make_config("target:\n  portal_address: 198.18.0.1\n")
    expected = (DATA / "initiator-config.txt").read_text()
    assert initiator_config(config, ALPHA) == expected


def test_initiator_config_without_mutual_or_discovery_chap(make_config) -> None:
    config = make_config("target:\n  mutual_chap: false\n  discovery_auth: false\n")
    text = initiator_config(config, ALPHA)
    assert "node.session.auth.password = Abcdefgh12345678" in text
    assert "username_in" not in text and "discovery.sendtargets" not in text


def test_a_host_gets_a_target_of_its_luns_from_1_its_iqn_alone_and_its_chap(
        make_config) -> None:
    (target,) = desired_state(make_config(), [], [], [DB1], DB1_LUNS).targets
    assert target.iqn == DB1.target_iqn and target.mac is None
    assert target.luns == (Lun(1, "/srv/db1-1.raw"), Lun(2, "/srv/db1-2.raw"))
    assert target.initiators == (DB1.initiator_iqn,)
    assert target.incoming == Account("db1", "Hostsecret123456")
    assert target.outgoing == Account("db1-target", "Hostmutual123456")


def test_a_host_without_luns_still_gets_its_target(make_config) -> None:
    (target,) = desired_state(make_config(), [], [], [DB1], []).targets
    assert target.luns == ()


def test_hosts_leave_the_clients_targets_as_they_were(make_config) -> None:
    config = make_config()
    alone = desired_state(config, [ALPHA], []).targets
    assert desired_state(config, [ALPHA], [], [DB1], DB1_LUNS).targets[:1] == alone


def test_discovery_accounts_are_the_clients_then_the_hosts(make_config) -> None:
    state = desired_state(make_config(), [ALPHA], [], [DB1], [], DISCOVERY_MUTUAL)
    assert [a.user for a in state.discovery] == ["alpha", "db1"]


def test_discovery_answers_in_mutual_chap_while_there_are_hosts(make_config) -> None:
    state = desired_state(make_config(), [ALPHA], [], [DB1], [], DISCOVERY_MUTUAL)
    assert state.discovery_out == Account("netboot_discovery", "Discovery0123456")


def test_discovery_answers_nobody_without_hosts(make_config) -> None:
    assert desired_state(make_config(), [ALPHA], [], [], [], DISCOVERY_MUTUAL).discovery_out \
        is None


def test_discovery_answers_nobody_with_mutual_chap_off(make_config) -> None:
    config = make_config("target:\n  mutual_chap: false\n")
    assert desired_state(config, [], [], [DB1], [], DISCOVERY_MUTUAL).discovery_out is None


def test_host_initiator_config_matches_golden(make_config) -> None:
    config = make_config("target:\n  portal_address: 198.18.0.1\n")
    expected = (DATA / "host-initiator-config.txt").read_text()
    assert initiator_config(config, DB1, DISCOVERY_MUTUAL) == expected


def test_host_initiator_config_without_mutual_chap_has_no_discovery_mutual(
        make_config) -> None:
    config = make_config("target:\n  mutual_chap: false\n")
    text = initiator_config(config, DB1, DISCOVERY_MUTUAL)
    assert "username_in" not in text and "Discovery0123456" not in text


def test_serve_has_no_target_service_when_manage_is_off(make_config) -> None:
    from netboot.serve.compose import build_services

    config = make_config("target:\n  manage: false\n")
    assert "target" not in [s.name for s in build_services(config, lambda: None)]


def test_an_overlay_client_gets_its_upper_as_lun_1_and_its_image_read_only(make_config) -> None:
    one = replace(client("one", "52:54:00:00:00:0a"), boot_method=BootMethod.OVERLAY,
                  image="builtin@2")
    two = replace(client("two", "52:54:00:00:00:0b"), boot_method=BootMethod.OVERLAY,
                  image="builtin@2")
    extra = LunRecord(one.mac, 2, "/srv/data.raw", "file", 1 << 20, 0.0)
    image = Location(Store.FILE, "/var/lib/netboot/images/builtin@2.img")
    state = desired_state(make_config(), [one, two, ALPHA], [extra],
                          lowers={"builtin@2": image, "builtin@1": Location(Store.FILE, "/x")})
    luns = {t.iqn: t.luns for t in state.targets}
    assert luns[one.target_iqn] == (Lun(1, one.lun_path), Lun(2, "/srv/data.raw"),
                                    Lun(LOWER_LUN, image.name, readonly=True))
    assert luns[two.target_iqn] == (Lun(1, two.lun_path),
                                    Lun(LOWER_LUN, image.name, readonly=True))
    assert luns[ALPHA.target_iqn] == (Lun(1, ALPHA.lun_path),)  # a full clone: no lower


def test_an_overlay_client_on_an_rbd_version_gets_its_snapshot_read_only_through_bs_rbd(
        make_config) -> None:
    one = replace(client("one", "52:54:00:00:00:0a"), boot_method=BootMethod.OVERLAY,
                  image="builtin@2", lun_path="rbd:netboot/root.one")
    snapshot = rbd_location("netboot", "image.builtin", "v2")
    (target,) = desired_state(make_config(), [one], [], lowers={"builtin@2": snapshot}).targets
    assert target.luns == (Lun(1, "netboot/root.one", Store.RBD),
                           Lun(LOWER_LUN, "netboot/image.builtin@v2", Store.RBD, readonly=True))


def test_an_overlay_client_whose_image_version_is_gone_gets_no_lower_lun(make_config) -> None:
    gone = replace(ALPHA, boot_method=BootMethod.OVERLAY, image="builtin@9")
    (target,) = desired_state(make_config(), [gone], [], lowers={}).targets
    assert target.luns == (Lun(1, gone.lun_path),)


def test_renewed_secrets_alone_are_no_change_for_the_watch(make_config) -> None:
    config = make_config()
    before = desired_state(config, [ALPHA], [])
    renewed = desired_state(config, [replace(ALPHA, chap_secret="Newsecret1234567",
                                             mutual_secret="Newmutual1234567")], [])
    assert renewed != before
    assert only_secrets_differ(renewed, before)


def test_a_new_lun_is_a_change_for_the_watch(make_config) -> None:
    config = make_config()
    before = desired_state(config, [ALPHA], [])
    grown = desired_state(config, [ALPHA], [LunRecord(ALPHA.mac, 2, "/srv/alpha-2.raw",
                                                       LunKind.FILE, 1 << 20, 0.0)])
    assert not only_secrets_differ(grown, before)
