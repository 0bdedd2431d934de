"""The inventory: records, address allocation, file modes, concurrency and crash safety,
on SQLite and on PostgreSQL (tests/inventory/conftest.py)."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.errors import Conflict, NotFound, ValidationError
from netboot.inventory.clients import UnknownNote
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory, open_inventory
from netboot.provisioning.clients import add_client, remove_client
from netboot.provisioning.root import recover_interrupted

WIDE = """\
server:
  address: 198.18.0.1
dhcp:
  subnet: 198.18.0.0/22
  router: 198.18.0.254
  range_start: 198.18.3.0
  range_end: 198.18.3.254
storage:
  state_dir: {state_dir}
"""


def test_added_client_reads_back_identically(config, inventory):
    added = add_client(config, inventory, "52:54:00:00:00:01", hostname="web1").client
    assert inventory.get("52:54:00:00:00:01") == added
    assert added.hostname == "web1"
    assert added.initiator_iqn == "iqn.2026-11.org.example:initiator:web1"
    assert added.target_iqn == "iqn.2026-11.org.example:target:web1"
    assert len(added.chap_secret) == 16 and added.chap_secret != added.mutual_secret


def test_secrets_are_not_in_repr(config, inventory):
    added = add_client(config, inventory, "52:54:00:00:00:01").client
    assert added.chap_secret not in repr(added)
    assert added.mutual_secret not in repr(added)


@pytest.mark.sqlite_only
def test_store_and_state_dir_are_private(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    assert config.storage.database.stat().st_mode & 0o777 == 0o600
    assert config.storage.state_dir.stat().st_mode & 0o777 == 0o700
    for suffix in ("-wal", "-shm"):
        extra = config.storage.database.with_name(config.storage.database.name + suffix)
        if extra.exists():
            assert extra.stat().st_mode & 0o777 == 0o600


def test_first_free_address_skips_server_and_taken(config, inventory):
    a = add_client(config, inventory, "52:54:00:00:00:01").client
    b = add_client(config, inventory, "52:54:00:00:00:02").client
    assert (a.ip, b.ip) == (IPv4Address("198.18.0.2"), IPv4Address("198.18.0.3"))


def test_given_address_is_used(config, inventory):
    c = add_client(config, inventory, "52:54:00:00:00:01", ip=IPv4Address("198.18.0.50")).client
    assert c.ip == IPv4Address("198.18.0.50")


def test_address_of_server_is_refused(config, inventory):
    with pytest.raises(Conflict, match="server"):
        add_client(config, inventory, "52:54:00:00:00:01", ip=IPv4Address("198.18.0.1"))


def test_address_outside_subnet_is_refused(config, inventory):
    with pytest.raises(ValidationError, match="not a host address"):
        add_client(config, inventory, "52:54:00:00:00:01", ip=IPv4Address("198.19.0.5"))


def test_address_in_dynamic_range_is_refused(config, inventory):
    with pytest.raises(ValidationError, match="dynamic range"):
        add_client(config, inventory, "52:54:00:00:00:01", ip=IPv4Address("198.18.0.200"))


def test_address_of_another_client_is_refused(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01", ip=IPv4Address("198.18.0.50"))
    with pytest.raises(Conflict, match="52:54:00:00:00:01"):
        add_client(config, inventory, "52:54:00:00:00:02", ip=IPv4Address("198.18.0.50"))


def test_duplicate_mac_is_refused(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    with pytest.raises(Conflict, match="already registered"):
        add_client(config, inventory, "52:54:00:00:00:01", hostname="other")


def test_duplicate_hostname_is_refused(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01", hostname="web1")
    with pytest.raises(Conflict, match="hostname web1"):
        add_client(config, inventory, "52:54:00:00:00:02", hostname="web1")


def test_invalid_hostname_is_refused(config, inventory):
    with pytest.raises(ValidationError, match="RFC 1123"):
        add_client(config, inventory, "52:54:00:00:00:01", hostname="web_1")


def test_refused_add_leaves_no_record(config, inventory):
    with pytest.raises(ValidationError):
        add_client(config, inventory, "52:54:00:00:00:01", ip=IPv4Address("198.18.0.200"))
    assert inventory.clients() == []


def test_pool_exhaustion_is_a_clear_error(store_config):
    config = store_config(base="""\
server:
  address: 198.18.0.1
dhcp:
  subnet: 198.18.0.0/29
  range_start: 198.18.0.5
  range_end: 198.18.0.6
storage:
  state_dir: {state_dir}
""")
    with open_inventory(config) as inv:
        for i in range(3):
            add_client(config, inv, f"52:54:00:00:00:0{i + 1}")
        with pytest.raises(Conflict, match="no free address"):
            add_client(config, inv, "52:54:00:00:00:09")


def test_remove_deletes_the_record(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    remove_client(config, inventory, "52:54:00:00:00:01")
    with pytest.raises(NotFound):
        inventory.get("52:54:00:00:00:01")


def test_remove_of_unknown_mac_is_not_found(config, inventory):
    with pytest.raises(NotFound, match="52:54:00:00:00:01"):
        remove_client(config, inventory, "52:54:00:00:00:01")


def test_stage_is_recorded(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.record_stage("52:54:00:00:00:01", Stage.DHCP, at=1000.0)
    c = inventory.get("52:54:00:00:00:01")
    assert (c.last_stage, c.last_stage_at, c.last_seen) == ("dhcp", 1000.0, 1000.0)


def test_stage_is_not_recorded_over_a_stage_it_must_not_replace(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.record_stage("52:54:00:00:00:01", Stage.ROOT, at=1000.0)
    assert not inventory.record_stage("52:54:00:00:00:01", Stage.LOGIN, at=1001.0,
                                      unless={Stage.LOGIN, Stage.ROOT})
    c = inventory.get("52:54:00:00:00:01")
    assert (c.last_stage, c.last_stage_at) == ("root", 1000.0)


def test_stage_is_recorded_over_a_stage_not_listed_to_keep(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.record_stage("52:54:00:00:00:01", Stage.LOADER, at=1000.0)
    assert inventory.record_stage("52:54:00:00:00:01", Stage.LOGIN, at=1001.0,
                                  unless={Stage.LOGIN, Stage.ROOT})
    assert inventory.get("52:54:00:00:00:01").last_stage == "login"


def test_stage_log_keeps_every_recorded_stage_in_time_order(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.record_stages([("52:54:00:00:00:01", Stage.DHCP, 1000.0)], 60)
    inventory.record_stages([("52:54:00:00:00:01", Stage.DHCP, 1000.5)], 60)  # a repeat
    inventory.record_stage("52:54:00:00:00:01", Stage.LOADER, at=1001.0)
    inventory.record_stage("52:54:00:00:00:01", Stage.KERNEL, at=1003.0)
    assert inventory.stage_log("52:54:00:00:00:01") == {
        "52:54:00:00:00:01": [(Stage.DHCP, 1000.0), (Stage.LOADER, 1001.0),
                              (Stage.KERNEL, 1003.0)]}


def test_a_stage_written_after_a_later_one_is_logged_but_not_last(config, inventory):
    """The HTTP server's batch (script) committed after a TFTP worker's (kernel)."""
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.record_stages([("52:54:00:00:00:01", Stage.KERNEL, 1003.0)], 0)
    inventory.record_stages([("52:54:00:00:00:01", Stage.LOADER, 1001.0)], 0)
    assert inventory.get("52:54:00:00:00:01").last_stage == "kernel"
    assert [s for s, _ in inventory.stage_log()["52:54:00:00:00:01"]] == [Stage.LOADER,
                                                                          Stage.KERNEL]


def test_stage_log_keeps_only_a_clients_last_stages(config, inventory):
    from netboot.inventory.timeline import KEPT_ROWS
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.record_stages([("52:54:00:00:00:01", stage, 1000.0 + 10 * n + i)
                             for n in range(KEPT_ROWS) for i, stage in
                             enumerate((Stage.DHCP, Stage.LOADER))], 1)
    log = inventory.stage_log()["52:54:00:00:00:01"]
    assert len(log) == KEPT_ROWS
    assert log[-1] == (Stage.LOADER, 1000.0 + 10 * (KEPT_ROWS - 1) + 1)


def test_reaching_the_root_notes_the_image_version_the_boot_mounted(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.update("52:54:00:00:00:01", image="os@1")
    inventory.record_stages([("52:54:00:00:00:01", Stage.LOGIN, 1000.0)], 60)
    assert inventory.get("52:54:00:00:00:01").booted_image is None
    inventory.record_stages([("52:54:00:00:00:01", Stage.ROOT, 1001.0)], 60)
    inventory.update("52:54:00:00:00:01", image="os@2")  # reimaged: runs os@1 until it boots
    c = inventory.get("52:54:00:00:00:01")
    assert (c.image, c.booted_image) == ("os@2", "os@1")


def test_stage_log_goes_with_its_client(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    inventory.record_stage("52:54:00:00:00:01", Stage.DHCP, at=1000.0)
    remove_client(config, inventory, "52:54:00:00:00:01")
    assert inventory.stage_log() == {}


def test_unknown_machine_is_new_only_once(inventory):
    first = UnknownNote("52:54:00:00:00:09", 1.0, "PXEClient", 0)
    assert inventory.note_unknowns([first]) == ["52:54:00:00:00:09"]
    assert inventory.note_unknowns([UnknownNote("52:54:00:00:00:09", 2.0)]) == []
    (m,) = inventory.unknown_machines()
    assert (m.requests, m.first_seen, m.last_seen, m.vendor_class) == (2, 1.0, 2.0, "PXEClient")


def test_unknown_machines_past_keep_are_forgotten_oldest_first(inventory):
    notes = [UnknownNote(f"52:54:00:00:01:{i:02x}", float(i)) for i in range(10)]
    inventory.note_unknowns(notes[:6], keep=4)
    inventory.note_unknowns(notes[6:], keep=4)
    assert [m.mac for m in inventory.unknown_machines()] == [n.mac for n in notes[6:]]


def test_registering_removes_it_from_unknown(config, inventory):
    inventory.note_unknowns([UnknownNote("52:54:00:00:00:09", 1.0)])
    add_client(config, inventory, "52:54:00:00:00:09")
    assert inventory.unknown_machines() == []


def test_reopening_keeps_records(config):
    with open_inventory(config) as inv:
        add_client(config, inv, "52:54:00:00:00:01")
    with open_inventory(config) as inv:
        assert [c.mac for c in inv.clients()] == ["52:54:00:00:00:01"]


def test_change_mark_stays_while_nobody_commits(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    mark = inventory.change_mark()
    inventory.clients()
    with open_inventory(config) as other:
        other.clients()
    assert inventory.change_mark() == mark


def test_change_mark_moves_when_another_connection_commits(config, inventory):
    """What the target watch, the window preparer and DHCP's client cache rely on."""
    mark = inventory.change_mark()
    with open_inventory(config) as other:
        add_client(config, other, "52:54:00:00:00:01")
    assert inventory.change_mark() != mark


def test_change_mark_moves_when_this_connection_commits(config, inventory):
    mark = inventory.change_mark()
    add_client(config, inventory, "52:54:00:00:00:01")
    assert inventory.change_mark() != mark


def test_a_failed_transaction_leaves_nothing(inventory):
    with pytest.raises(RuntimeError), inventory.transaction() as db:
        db.execute("INSERT INTO unknown_machines (mac, first_seen, last_seen) VALUES (?, ?, ?)",
                   ("52:54:00:00:00:09", 1.0, 1.0))
        raise RuntimeError("abandoned")
    assert inventory.unknown_machines() == []


def _add_many(config, worker: int, count: int) -> None:
    with open_inventory(config) as inv:
        for i in range(count):
            add_client(config, inv, f"52:54:00:{worker:02x}:{i >> 8:02x}:{i & 0xFF:02x}")


ADDS_PER_WRITER = {"sqlite": 50, "postgresql": 25}


def test_concurrent_adds_lose_and_duplicate_nothing(store, store_config):
    config = store_config(base=WIDE)
    open_inventory(config).close()
    count = ADDS_PER_WRITER[store]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(config, w, count)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    with open_inventory(config) as inv:
        clients = inv.clients()
    assert len(clients) == 8 * count
    assert len({c.mac for c in clients}) == 8 * count
    assert len({c.ip for c in clients}) == 8 * count
    assert len({c.hostname for c in clients}) == 8 * count


def _open_new(location, password_file, start) -> None:
    start.wait()
    with Inventory(location, password_file=password_file) as inv, inv.transaction() as db:
        db.execute("SELECT 1")


def _new_database(request, store: str, name: str) -> tuple[object, object]:
    """Where a new, empty database of ``store`` is, and its password file."""
    if store == "sqlite":
        return request.getfixturevalue("tmp_path") / f"{name}.db", None
    server = request.getfixturevalue("postgres_server")
    database = server.new_database()
    request.addfinalizer(lambda: server.drop_database(database))
    return server.url(database), server.password_file


def test_processes_opening_a_new_database_together_all_succeed(request, store):
    """As `netboot serve`'s processes and threads do on a fresh state dir."""
    ctx = multiprocessing.get_context("spawn")  # no fork of pytest's threads
    for attempt in range(4):
        start = ctx.Event()
        location, password_file = _new_database(request, store, f"new{attempt}")
        procs = [ctx.Process(target=_open_new, args=(location, password_file, start))
                 for _ in range(6)]
        for p in procs:
            p.start()
        time.sleep(2.0)  # every process imported and waiting, so they open together
        start.set()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * 6


WRITER = textwrap.dedent("""\
    import sys
    from netboot.provisioning.clients import add_client
    from netboot.configfile import load_config
    from netboot.inventory.store import open_inventory
    config = load_config(sys.argv[1])
    with open_inventory(config) as inv:
        for i in range(100000):
            mac = f"52:54:01:{i >> 16:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"
            add_client(config, inv, mac)
            print(mac, flush=True)
""")


def test_writer_killed_mid_stream_leaves_a_consistent_store(store, store_config, tmp_path):
    config = store_config(base=WIDE)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(config.source)],
                            stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        acknowledged.append(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acknowledged) == 40
    if store == "sqlite":
        raw = sqlite3.connect(config.storage.database)
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        raw.close()
    with open_inventory(config) as inv:
        stored = {c.mac for c in inv.clients()}
        assert set(acknowledged) <= stored  # every committed add survived
        recover_interrupted(config, inv)  # as the next `client add` and serve's start do
        clients = inv.clients()
        assert all(c.provisioned and Path(c.lun_path).exists() for c in clients)
        assert {c.mac for c in clients} >= set(acknowledged)
        add_client(config, inv, "52:54:00:ff:ff:01")  # and the store takes new writes


def test_stages_recorded_in_a_batch_skip_a_repeat_within_the_interval(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    add_client(config, inventory, "52:54:00:00:00:02")
    inventory.record_stages([("52:54:00:00:00:01", Stage.DHCP, 1000.0),
                             ("52:54:00:00:00:02", Stage.LOADER, 1000.0)], 60)
    inventory.record_stages([("52:54:00:00:00:01", Stage.DHCP, 1030.0),  # same step
                             ("52:54:00:00:00:02", Stage.DHCP, 1030.0),  # a new boot
                             ("52:54:00:00:00:03", Stage.DHCP, 1030.0)], 60)  # unknown
    assert inventory.get("52:54:00:00:00:01").last_stage_at == 1000.0
    assert inventory.get("52:54:00:00:00:02").last_stage_at == 1030.0
    inventory.record_stages([("52:54:00:00:00:01", Stage.DHCP, 1061.0)], 60)
    assert inventory.get("52:54:00:00:00:01").last_stage_at == 1061.0


def test_unsettled_clients_are_the_unprovisioned_and_those_with_a_next_root(config, inventory):
    for n in range(1, 4):
        add_client(config, inventory, f"52:54:00:00:00:0{n}")
    inventory.update("52:54:00:00:00:01", provisioned=False)
    inventory.update("52:54:00:00:00:02", next_lun_path="/srv/next.img")
    assert sorted(c.mac for c in inventory.unsettled_clients()) == [
        "52:54:00:00:00:01", "52:54:00:00:00:02"]


def test_directory_version_moves_when_a_client_is_added_or_removed(config, inventory):
    before = inventory.directory_version()
    add_client(config, inventory, "52:54:00:00:00:01")
    added = inventory.directory_version()
    remove_client(config, inventory, "52:54:00:00:00:01")
    assert before < added < inventory.directory_version()


def test_directory_version_moves_when_a_hostname_changes(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    before = inventory.directory_version()
    inventory.update("52:54:00:00:00:01", hostname="renamed")
    assert inventory.directory_version() > before


def test_directory_version_stays_while_clients_boot(config, inventory):
    add_client(config, inventory, "52:54:00:00:00:01")
    before = inventory.directory_version()
    inventory.record_stages([("52:54:00:00:00:01", Stage.DHCP, 1000.0)], 60)
    inventory.record_stage("52:54:00:00:00:01", Stage.LOGIN, at=1001.0)
    inventory.update("52:54:00:00:00:01", provisioned=True)
    assert inventory.directory_version() == before
