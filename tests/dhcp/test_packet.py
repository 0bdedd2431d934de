"""The packet layer: strict parsing (every malformed case dropped and counted), encoding
checked against scapy's independent decoding, the reply skeleton, the rate limit, fuzzing."""

from __future__ import annotations

import logging
import os
import random
from ipaddress import IPv4Address

import pytest

from netboot.dhcp.modifiers import with_message_type, with_option, with_server_id
from netboot.dhcp.options import MessageType
from netboot.dhcp.packet import (
    DropReason,
    Malformed,
    Reply,
    encode_reply,
    parse_request,
    reply_from_request,
)
from netboot.dhcp.service import DhcpEngine, RateLimiter, StageWriter, UnknownWriter
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory
from netboot.provisioning.clients import add_client
from tests.conftest import BASE_CONFIG
from tests.support.dhcp_frames import decode, frame, intel_rom, ipxe_bios, options, plain, uefi_http

MAC = "52:54:00:12:34:56"
NOW = 1_800_000_000.0


def reason_of(data: bytes) -> DropReason:
    with pytest.raises(Malformed) as caught:
        parse_request(data)
    return caught.value.reason


def with_options(raw: bytes) -> bytes:
    """A DISCOVER whose options field is exactly ``raw``."""
    return plain(MAC)[:240] + raw


def test_firmware_request_parses():
    request = parse_request(ipxe_bios(MAC))
    assert request.mac == MAC
    assert request.message_type is MessageType.DISCOVER
    assert request.is_ipxe
    assert request.architectures == (0,)


def test_truncated_packet_is_dropped():
    assert reason_of(intel_rom(MAC)[:200]) is DropReason.TRUNCATED


def test_wrong_magic_cookie_is_dropped():
    data = bytearray(intel_rom(MAC))
    data[236:240] = b"\x63\x82\x53\x64"
    assert reason_of(bytes(data)) is DropReason.BAD_COOKIE


def test_option_running_past_the_end_is_dropped():
    assert reason_of(with_options(b"\x35\x01\x01\x3c\x20PXE")) is DropReason.OPTION_OVERRUN


def test_255_length_option_is_dropped():
    assert reason_of(with_options(b"\x35\x01\x01\x3c\xff" + b"x" * 40)) is \
        DropReason.OPTION_OVERRUN


def test_option_code_without_length_is_dropped():
    assert reason_of(with_options(b"\x35\x01\x01\x3c")) is DropReason.OPTION_OVERRUN


def test_zero_length_message_type_is_dropped():
    assert reason_of(with_options(b"\x35\x00\xff")) is DropReason.BAD_OPTION_LENGTH


def test_zero_length_vendor_class_is_dropped():
    assert reason_of(with_options(b"\x35\x01\x01\x3c\x00\xff")) is DropReason.BAD_OPTION_LENGTH


def test_non_ethernet_htype_is_dropped():
    data = bytearray(intel_rom(MAC))
    data[1] = 6  # IEEE 802
    assert reason_of(bytes(data)) is DropReason.NOT_ETHERNET


def test_reply_sent_to_server_port_is_dropped():
    data = bytearray(intel_rom(MAC))
    data[0] = 2
    assert reason_of(bytes(data)) is DropReason.NOT_REQUEST


def test_bootp_request_without_message_type_is_dropped():
    assert reason_of(with_options(b"\x3c\x03abc\xff")) is DropReason.NO_MESSAGE_TYPE


def test_unknown_message_type_is_dropped():
    assert reason_of(with_options(b"\x35\x01\x09\xff")) is DropReason.BAD_MESSAGE_TYPE


def test_server_message_type_from_a_client_is_dropped():
    assert reason_of(plain(MAC, "offer")) is DropReason.BAD_MESSAGE_TYPE


def test_broadcast_chaddr_is_dropped():
    data = bytearray(intel_rom(MAC))
    data[28:34] = b"\xff" * 6
    assert reason_of(bytes(data)) is DropReason.BAD_CHADDR


def test_1500_random_bytes_are_dropped():
    data = random.Random(7).randbytes(1500)
    assert reason_of(data) in set(DropReason)


def test_repeated_option_is_concatenated():
    request = parse_request(with_options(b"\x35\x01\x01\x3c\x03PXE\x3c\x06Client\xff"))
    assert request.vendor_class == b"PXEClient"


def test_overloaded_file_field_options_are_read():
    data = bytearray(with_options(b"\x35\x01\x01\x34\x01\x01\xff"))
    data[108:113] = b"\x3c\x03abc"  # option 60 inside the file field
    assert parse_request(bytes(data)).vendor_class == b"abc"


def test_user_class_as_rfc3004_list_is_ipxe():
    assert parse_request(plain(MAC, extra=[("user_class", b"\x04iPXE")])).is_ipxe


def test_reply_from_request_copies_identity_and_relay_fields():
    data = uefi_http(MAC, xid=0x01020304, flags=0x8000, giaddr="198.18.0.126",
                     extra=[("client_id", b"\x01cid"), ("relay_agent_information", b"\x01\x02ab")])
    request = parse_request(data)
    reply = reply_from_request(request, with_message_type(MessageType.OFFER),
                               with_server_id(IPv4Address("198.18.0.1")))
    got = decode(encode_reply(reply))
    opts = options(got)
    assert (got.xid, got.flags, got.giaddr) == (0x01020304, 0x8000, "198.18.0.126")
    assert got.chaddr == request.chaddr
    assert opts[61] == b"\x01cid"
    assert opts[82] == b"\x01\x02ab"
    assert opts[97] == request.options[97]
    assert (opts[53], opts[54]) == (2, "198.18.0.1")


def test_encoded_reply_has_bootp_minimum_size():
    reply = reply_from_request(parse_request(plain(MAC)), with_message_type(MessageType.NAK),
                               with_server_id(IPv4Address(1)))
    assert len(encode_reply(reply)) == 300


def test_option_longer_than_255_is_split_and_rejoined():
    reply = reply_from_request(parse_request(plain(MAC)), with_message_type(MessageType.ACK),
                               with_server_id(IPv4Address(1)), with_option(67, b"u" * 300))
    data = encode_reply(reply)
    data = bytearray(data)
    data[0], data[242] = 1, MessageType.REQUEST  # make it a request to read it back ourselves
    request_view = parse_request(bytes(data))
    assert request_view.options[67] == b"u" * 300


def test_reply_round_trips_through_scapy():
    reply = Reply(7, 0, bytes.fromhex("525400123456") + bytes(10),
                  IPv4Address(0), ("255.255.255.255", 68), yiaddr=IPv4Address("198.18.0.9"),
                  siaddr=IPv4Address("198.18.0.1"), file=b"undionly.kpxe",
                  options={53: b"\x05", 54: IPv4Address("198.18.0.1").packed})
    got = decode(encode_reply(reply))
    assert (got.op, got.yiaddr, got.siaddr) == (2, "198.18.0.9", "198.18.0.1")
    assert got.file.rstrip(b"\0") == b"undionly.kpxe"


def test_rate_limit_stops_a_flooding_mac_only():
    limiter = RateLimiter(rate=10, burst=5)
    flood = [limiter.allow("52:54:00:00:00:01", NOW) for _ in range(50)]
    assert flood.count(True) == 5
    assert limiter.allow("52:54:00:00:00:02", NOW)


def test_client_message_from_another_port_than_68_is_dropped():
    with pytest.raises(Malformed) as err:
        parse_request(intel_rom(MAC), source=("198.18.0.9", 1068))
    assert err.value.reason is DropReason.BAD_SOURCE_PORT


def test_message_from_port_67_without_giaddr_is_dropped():
    with pytest.raises(Malformed) as err:
        parse_request(intel_rom(MAC), source=("198.18.0.9", 67))
    assert err.value.reason is DropReason.BAD_SOURCE_PORT


def test_relayed_message_from_port_67_is_accepted():
    request = parse_request(intel_rom(MAC, giaddr="198.18.0.126"), source=("198.18.0.126", 67))
    assert request.giaddr == IPv4Address("198.18.0.126")


def test_rate_limit_refills_with_time():
    limiter = RateLimiter(rate=10, burst=1)
    assert limiter.allow(MAC, NOW)
    assert not limiter.allow(MAC, NOW)
    assert limiter.allow(MAC, NOW + 0.2)


@pytest.fixture
def engine(make_config):
    """An engine without boot tokens: every reply to a registered client comes from memory
    (tests/dhcp/test_windows.py has the boot exchanges that open windows)."""
    config = make_config("boot:\n  tokens: false\n", base=BASE_CONFIG.replace(
        "  subnet: 198.18.0.0/24\n", "  subnet: 198.18.0.0/24\n  unknown: boot\n"))
    inventory = Inventory(config.storage.database)
    add_client(config, inventory, MAC)
    yield DhcpEngine(config, inventory, NOW)
    inventory.close()


def test_engine_counts_each_malformed_packet_by_reason(engine):
    engine.handle(intel_rom(MAC)[:100], ("0.0.0.0", 68), 67, NOW)
    engine.handle(with_options(b"\x35\x01\x01\x3c\x20PXE"), ("0.0.0.0", 68), 67, NOW)
    assert engine.stats.dropped == {DropReason.TRUNCATED: 1, DropReason.OPTION_OVERRUN: 1}
    assert engine.stats.replied == 0


def test_engine_answers_a_good_packet(engine):
    out = engine.handle(intel_rom(MAC), ("0.0.0.0", 68), 67, NOW)
    assert out is not None
    assert options(decode(out[0]))[53] == 2


def test_fuzz_10000_random_and_mutated_packets_never_raise(engine):
    """Random bytes and bit-flipped/truncated firmware packets through parse and decide."""
    rng = random.Random(2026)
    seeds = [intel_rom(MAC), ipxe_bios(MAC, "request", extra=[("requested_addr", "198.18.0.2")]),
             uefi_http("52:54:00:00:00:09"), plain("52:54:00:00:00:0a", "decline"),
             frame("52:54:00:00:00:0b", "inform", [], ciaddr="198.18.0.200"),
             plain("52:54:00:00:00:0c", "release", ciaddr="198.18.0.201")]
    for i in range(12_000):
        if i % 3 == 0:
            data = os.urandom(rng.randint(0, 1500))
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(240, len(data)) if i % 3 == 1 else
                     rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randint(200, len(data))]) if i % 5 == 0 else bytes(data)
        out = engine.handle(data, ("0.0.0.0", 68), rng.choice((67, 4011)), NOW + i * 0.01)
        if out is not None:
            assert decode(out[0]).op == 2
    stats = engine.stats
    assert stats.received == 12_000
    assert stats.replied + stats.unanswered + sum(stats.dropped.values()) == 12_000
    assert stats.replied > 0


def test_second_request_of_a_shape_is_patched_from_the_prepared_reply(engine):
    first = engine.handle(intel_rom(MAC, xid=1, flags=0x8000), ("0.0.0.0", 68), 67, NOW)
    second = engine.handle(intel_rom(MAC, xid=2, flags=0x8000), ("0.0.0.0", 68), 67, NOW + 1)
    assert engine.prepared.hits == 1
    got = decode(second[0])
    assert (got.xid, got.flags) == (2, 0x8000)
    assert second[0][12:] == first[0][12:]  # all but op..flags is the same reply


def test_a_prepared_reply_is_logged_with_the_xid_of_the_request_it_answers(engine, caplog):
    caplog.set_level(logging.DEBUG, logger="netboot.dhcp")
    engine.handle(intel_rom(MAC, xid=0x11), ("0.0.0.0", 68), 67, NOW)
    engine.handle(intel_rom(MAC, xid=0x22), ("0.0.0.0", 68), 67, NOW + 1)
    assert engine.prepared.hits == 1
    assert "DISCOVER xid 00000022" in caplog.records[-1].getMessage()


def test_a_prepared_reply_is_not_used_for_the_same_bytes_from_another_port(engine):
    engine.handle(intel_rom(MAC, xid=1), ("0.0.0.0", 68), 67, NOW)
    assert engine.handle(intel_rom(MAC, xid=2), ("198.18.0.9", 6800), 67, NOW) is None
    assert engine.stats.dropped == {DropReason.BAD_SOURCE_PORT: 1}
    assert engine.prepared.hits == 0


def test_engine_sends_an_offer_without_broadcast_flag_to_yiaddr_at_chaddr(engine):
    _, destination, mac = engine.handle(intel_rom(MAC), ("0.0.0.0", 68), 67, NOW)
    assert destination == (str(engine.clients.find(MAC).ip), 68)
    assert mac == bytes.fromhex(MAC.replace(":", ""))


def test_prepared_unicast_reply_is_not_used_for_a_request_with_the_broadcast_flag(engine):
    engine.handle(intel_rom(MAC, xid=1), ("0.0.0.0", 68), 67, NOW)
    engine.handle(intel_rom(MAC, xid=2), ("0.0.0.0", 68), 67, NOW)
    _, destination, mac = engine.handle(intel_rom(MAC, xid=3, flags=0x8000), ("0.0.0.0", 68),
                                        67, NOW)
    assert engine.prepared.hits == 1
    assert (destination, mac) == (("255.255.255.255", 68), None)


def test_engine_counts_a_client_message_from_a_wrong_port(engine):
    assert engine.handle(intel_rom(MAC), ("198.18.0.9", 6800), 67, NOW) is None
    assert engine.stats.dropped == {DropReason.BAD_SOURCE_PORT: 1}


def test_prepared_reply_is_not_used_after_the_client_changes(engine):
    engine.handle(intel_rom(MAC), ("0.0.0.0", 68), 67, NOW)
    engine.inventory.update(MAC, ip=IPv4Address("198.18.0.50"))
    out = engine.handle(intel_rom(MAC), ("0.0.0.0", 68), 67, NOW + engine.clients.refresh)
    assert decode(out[0]).yiaddr == "198.18.0.50"
    assert engine.prepared.hits == 0


def test_prepared_reply_survives_a_boot_stage_written_by_another_connection(engine):
    engine.handle(intel_rom(MAC, xid=1), ("0.0.0.0", 68), 67, NOW)
    with Inventory(engine.config.storage.database) as other:  # as the stage writer does
        other.record_stage(MAC, Stage.DHCP, NOW)
    engine.handle(intel_rom(MAC, xid=2), ("0.0.0.0", 68), 67, NOW + engine.clients.refresh)
    assert engine.prepared.hits == 1


def test_hostname_changed_by_another_connection_is_answered_after_the_refresh(engine):
    engine.handle(intel_rom(MAC), ("0.0.0.0", 68), 67, NOW)
    with Inventory(engine.config.storage.database) as other:
        other.update(MAC, hostname="renamed")
    out = engine.handle(intel_rom(MAC), ("0.0.0.0", 68), 67, NOW + engine.clients.refresh)
    assert options(decode(out[0]))[12] == b"renamed"
    assert engine.prepared.hits == 0


def stage_writer_run(make_config, events):
    """Each (stage, at) through a StageWriter of its own (stop flushes), the client after."""
    config = make_config()
    with Inventory(config.storage.database) as inventory:
        add_client(config, inventory, MAC)
        for stage, at in events:
            if stage is Stage.LOADER:  # recorded by the HTTP side, not by DHCP
                inventory.record_stage(MAC, stage, at)
                continue
            writer = StageWriter(lambda: Inventory(config.storage.database), interval=10)
            writer.start()
            writer.record(MAC, stage, at)
            writer.stop()
        return inventory.get(MAC)


def test_stage_writer_writes_a_repeated_stage_once_within_its_interval(make_config):
    client = stage_writer_run(make_config, [(Stage.DHCP, NOW), (Stage.DHCP, NOW + 5)])
    assert (client.last_stage, client.last_stage_at) == ("dhcp", NOW)


def test_stage_writer_writes_a_repeated_stage_after_its_interval(make_config):
    client = stage_writer_run(make_config, [(Stage.DHCP, NOW), (Stage.DHCP, NOW + 11)])
    assert client.last_stage_at == NOW + 11


def test_stage_writer_writes_dhcp_again_after_another_stage(make_config):
    client = stage_writer_run(make_config, [(Stage.DHCP, NOW), (Stage.LOADER, NOW + 1),
                                            (Stage.DHCP, NOW + 5)])
    assert (client.last_stage, client.last_stage_at) == ("dhcp", NOW + 5)


def random_macs(count: int, seed: int = 13) -> list[str]:
    """Locally administered unicast MACs, as a flooding tool makes them up."""
    rng = random.Random(seed)
    return [":".join(f"{b:02x}" for b in (0x02, *rng.randbytes(5))) for _ in range(count)]


@pytest.fixture
def flooded(make_config):
    """An engine as serve runs it (unknown machines noted by an UnknownWriter), with one
    registered client; counts the writer's transactions."""
    limits = "  subnet: 198.18.0.0/24\n  unknown_rate: 50\n  unknown_max: 40\n"
    config = make_config(base=BASE_CONFIG.replace("  subnet: 198.18.0.0/24\n", limits))
    inventory = Inventory(config.storage.database)
    add_client(config, inventory, MAC)
    transactions = []

    class Counted(Inventory):
        def note_unknowns(self, notes, keep=None):
            transactions.append(len(notes))
            return super().note_unknowns(notes, keep)

    writer = UnknownWriter(lambda: Counted(config.storage.database), config.dhcp.unknown_max,
                           pause=0.2)
    writer.start()
    engine = DhcpEngine(config, inventory, NOW, record_unknown=writer.record)
    yield engine, writer, transactions
    writer.stop()
    inventory.close()


def test_flood_of_random_macs_does_not_starve_a_registered_client(flooded):
    engine, _, _ = flooded
    answered = 0
    for i, mac in enumerate(random_macs(20_000)):
        now = NOW + i / 10_000  # 10,000 a second
        engine.handle(intel_rom(mac), ("0.0.0.0", 68), 67, now)
        if i % 1000 == 0:
            out = engine.handle(intel_rom(MAC, xid=i), ("0.0.0.0", 68), 67, now)
            answered += out is not None and options(decode(out[0]))[53] == 2
    assert answered == 20
    # 2 s of flood: a burst of 50, then 50 a second; the rest dropped and counted.
    assert engine.stats.dropped[DropReason.UNKNOWN_RATE_LIMITED] >= 20_000 - 50 * 3
    assert engine.stats.unanswered <= 50 * 3


def test_flood_notes_are_written_in_batches_and_the_table_stays_bounded(flooded):
    engine, writer, transactions = flooded
    engine.unknown_limiter.rate = engine.unknown_limiter.burst = 1e9  # every MAC gets noted
    macs = random_macs(2_000)
    for i, mac in enumerate(macs):
        engine.handle(intel_rom(mac), ("0.0.0.0", 68), 67, NOW + i / 10_000)
        if i % 250 == 0:
            assert len(engine.inventory.unknown_machines()) <= 40
    writer.stop()
    assert sum(transactions) == 2_000
    assert len(transactions) < 20  # the pause gathers hundreds of notes per transaction
    assert len(engine.inventory.unknown_machines()) == 40


class Untouchable:
    """An inventory that fails the test if anything reads or writes it."""

    def __getattr__(self, name):
        raise AssertionError(f"the inventory was used ({name}) while answering")


def test_registered_client_is_answered_from_memory(engine):
    engine.record_stage = lambda mac, stage, at: None  # serve hands stages to its writer
    ip = str(engine.clients.find(MAC).ip)
    request = ipxe_bios(MAC, "request", extra=[("server_id", "198.18.0.1"),
                                               ("requested_addr", ip)])
    engine.handle(intel_rom(MAC, xid=1), ("0.0.0.0", 68), 67, NOW)
    engine.handle(request, ("0.0.0.0", 68), 67, NOW)
    engine.inventory = engine.clients.inventory = engine.store.inventory = Untouchable()
    offer = engine.handle(intel_rom(MAC, xid=2), ("0.0.0.0", 68), 67, NOW + 1)
    ack = engine.handle(request, ("0.0.0.0", 68), 67, NOW + 1)
    assert [options(decode(out[0]))[53] for out in (offer, ack)] == [2, 5]
