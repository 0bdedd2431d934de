"""SAN host records and their LUNs, on SQLite and on PostgreSQL (tests/inventory/conftest.py)."""

from pathlib import Path

import pytest

from netboot.errors import Conflict, NotFound
from netboot.inventory.hosts import DISCOVERY_MUTUAL_USER, discovery_mutual, get_host, hosts
from netboot.inventory.luns import LunOwner, OwnerKind, extra_luns, luns_of
from netboot.provisioning.clients import add_client
from netboot.provisioning.hosts import add_host, remove_host
from netboot.provisioning.luns import add_lun, remove_lun
from netboot.target import DesiredState, Outcome, TargetError

IQN = "iqn.2026-11.org.example:db1"
DB1 = LunOwner(OwnerKind.HOST, "db1")


class RefusingTarget:
    """A target backend that fails every SAN host's target and keeps what it was asked."""

    def __init__(self) -> None:
        self.asked: list[DesiredState] = []

    def apply(self, desired: DesiredState) -> Outcome:
        self.asked.append(desired)
        return Outcome(failed={t.iqn: "refused by the test" for t in desired.targets
                               if t.mac is None})


def test_added_host_reads_back_identically(config, inventory):
    added, _ = add_host(config, inventory, "db1", IQN)
    assert get_host(inventory, "db1") == added
    assert hosts(inventory) == [added]


def test_host_gets_a_target_under_the_prefix_its_iqn_and_chap(config, inventory):
    added, _ = add_host(config, inventory, "DB1", IQN)
    assert added.name == "db1"
    assert added.initiator_iqn == IQN
    assert added.target_iqn == "iqn.2026-11.org.example:target:db1"
    assert (added.chap_user, added.mutual_user) == ("db1", "db1-target")
    assert len(added.chap_secret) == 16 and added.chap_secret != added.mutual_secret


def test_host_secrets_are_not_in_repr(config, inventory):
    added, _ = add_host(config, inventory, "db1", IQN)
    assert added.chap_secret not in repr(added)
    assert added.mutual_secret not in repr(added)


def test_add_without_a_target_backend_says_it_is_not_applied(config, inventory):
    _, applied = add_host(config, inventory, "db1", IQN)
    assert not applied.done


def test_host_whose_target_fails_is_taken_back(config, inventory):
    backend = RefusingTarget()
    with pytest.raises(TargetError, match="target:db1: refused by the test"):
        add_host(config, inventory, "db1", IQN, backend=backend)
    assert hosts(inventory) == []
    assert backend.asked[-1].targets == ()


def test_two_hosts_get_different_secrets(config, inventory):
    one, _ = add_host(config, inventory, "db1", IQN)
    two, _ = add_host(config, inventory, "db2", "iqn.2026-11.org.example:db2")
    assert {one.chap_secret, one.mutual_secret}.isdisjoint({two.chap_secret, two.mutual_secret})


def test_duplicate_host_name_is_refused(config, inventory):
    add_host(config, inventory, "db1", IQN)
    with pytest.raises(Conflict, match="SAN host named db1 is already registered"):
        add_host(config, inventory, "db1", "iqn.2026-11.org.example:other")


def test_host_named_as_a_clients_hostname_is_refused(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01", hostname="web1")
    with pytest.raises(Conflict, match="client 52:54:00:00:00:01's hostname"):
        add_host(config, inventory, "web1", IQN)


def test_client_with_a_hosts_name_as_hostname_is_refused(config, inventory):
    add_host(config, inventory, "web1", IQN)
    with pytest.raises(Conflict, match="hostname web1 is already used by SAN host web1"):
        add_client(config, inventory, "52:54:00:00:00:01", hostname="web1")


def test_initiator_iqn_of_another_host_is_refused(config, inventory):
    add_host(config, inventory, "db1", IQN)
    with pytest.raises(Conflict, match=f"initiator IQN {IQN} is already used by SAN host db1"):
        add_host(config, inventory, "db2", IQN)


def test_initiator_iqn_of_a_client_is_refused(config, inventory):
    client = add_client(config, inventory, "52:54:00:00:00:01").client
    with pytest.raises(Conflict, match="already used by client 52:54:00:00:00:01"):
        add_host(config, inventory, "db1", client.initiator_iqn)


def test_refused_host_leaves_no_record(config, inventory):
    add_host(config, inventory, "db1", IQN)
    with pytest.raises(Conflict):
        add_host(config, inventory, "db2", IQN)
    assert [h.name for h in hosts(inventory)] == ["db1"]


def test_discovery_mutual_account_is_made_once_by_the_first_host(config, inventory):
    assert discovery_mutual(inventory) is None
    add_host(config, inventory, "db1", IQN)
    first = discovery_mutual(inventory)
    add_host(config, inventory, "db2", "iqn.2026-11.org.example:db2")
    assert first is not None and first.user == DISCOVERY_MUTUAL_USER
    assert discovery_mutual(inventory) == first
    assert first.secret not in repr(first)


def test_host_luns_start_at_1(config, inventory, tmp_path: Path):
    add_host(config, inventory, "db1", IQN)
    first = add_lun(config, inventory, DB1, file=tmp_path / "a.raw", size=1 << 20)
    second = add_lun(config, inventory, DB1, file=tmp_path / "b.raw", size=1 << 20)
    assert (first.lun, second.lun) == (1, 2)
    assert [r.owner for r in luns_of(inventory, DB1)] == ["db1", "db1"]


def test_client_luns_still_start_at_2(config, inventory, tmp_path: Path):
    add_client(config, inventory, "52:54:00:00:00:01")
    owner = LunOwner(OwnerKind.CLIENT, "52:54:00:00:00:01")
    assert add_lun(config, inventory, owner, file=tmp_path / "a.raw", size=1 << 20).lun == 2


def test_host_lun_1_can_be_removed(config, inventory, tmp_path: Path):
    add_host(config, inventory, "db1", IQN)
    add_lun(config, inventory, DB1, file=tmp_path / "a.raw", size=1 << 20)
    assert remove_lun(inventory, DB1, 1).lun == 1
    assert luns_of(inventory, DB1) == []


def test_lun_of_an_unknown_host_is_not_found_and_creates_nothing(config, inventory,
                                                                 tmp_path: Path):
    with pytest.raises(NotFound, match="no SAN host named db1"):
        add_lun(config, inventory, DB1, file=tmp_path / "a.raw", size=1 << 20)
    assert not (tmp_path / "a.raw").exists()


def test_a_file_backing_a_clients_lun_is_refused_for_a_host(config, inventory,
                                                            tmp_path: Path):
    add_client(config, inventory, "52:54:00:00:00:01")
    add_host(config, inventory, "db1", IQN)
    data = tmp_path / "a.raw"
    add_lun(config, inventory, LunOwner(OwnerKind.CLIENT, "52:54:00:00:00:01"), file=data,
            size=1 << 20)
    with pytest.raises(Conflict, match="already backs a LUN of client 52:54:00:00:00:01"):
        add_lun(config, inventory, DB1, file=data)


def test_a_file_backing_a_hosts_lun_is_refused_for_a_client(config, inventory,
                                                            tmp_path: Path):
    add_client(config, inventory, "52:54:00:00:00:01")
    add_host(config, inventory, "db1", IQN)
    data = tmp_path / "a.raw"
    add_lun(config, inventory, DB1, file=data, size=1 << 20)
    with pytest.raises(Conflict, match="already backs a LUN of SAN host db1"):
        add_lun(config, inventory, LunOwner(OwnerKind.CLIENT, "52:54:00:00:00:01"), file=data)


def test_host_and_client_luns_are_kept_apart(config, inventory, tmp_path: Path):
    add_client(config, inventory, "52:54:00:00:00:01")
    add_host(config, inventory, "db1", IQN)
    add_lun(config, inventory, DB1, file=tmp_path / "a.raw", size=1 << 20)
    assert extra_luns(inventory) == []


def test_remove_host_drops_its_lun_records_and_keeps_their_files(config, inventory,
                                                                 tmp_path: Path):
    add_host(config, inventory, "db1", IQN)
    data = tmp_path / "a.raw"
    add_lun(config, inventory, DB1, file=data, size=1 << 20)
    removed = remove_host(config, inventory, "db1")
    assert [r.path for r in removed.luns] == [str(data)]
    assert hosts(inventory) == [] and luns_of(inventory, DB1) == []
    assert data.is_file()


def test_remove_of_an_unknown_host_is_not_found(config, inventory):
    with pytest.raises(NotFound, match="no SAN host named db1"):
        remove_host(config, inventory, "db1")
