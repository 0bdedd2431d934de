"""netboot's TFTP codec against tftpy's, and its fixes for tftpy's parse faults."""

from __future__ import annotations

import pytest
from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketACK, TftpPacketDAT

from netboot.tftp.packets import (
    Ack,
    Error,
    ErrorCode,
    Malformed,
    Opcode,
    Request,
    data_header,
    encode_error,
    encode_oack,
    encode_request,
    parse,
)


def test_data_packet_decodes_with_tftpy_including_wrapped_block_numbers():
    packet = TftpPacketFactory().parse(data_header(65536 + 7) + b"payload")
    assert isinstance(packet, TftpPacketDAT)
    assert (packet.blocknumber, packet.data) == (7, b"payload")


def test_ack_from_tftpy_parses_to_its_block():
    ack = TftpPacketACK()
    ack.blocknumber = 65535
    assert parse(ack.encode().buffer) == Ack(65535)


def test_request_option_names_are_case_insensitive():
    request = parse(encode_request(Opcode.RRQ, "pxelinux.0", {"BlkSize": "1468"}))
    assert request == Request(Opcode.RRQ, "pxelinux.0", "octet", {"blksize": "1468"})


def test_error_packet_carries_our_message_not_the_stock_text():
    raw = encode_error(ErrorCode.BAD_OPTIONS, "blksize 4 is outside 8-65464")
    assert raw == b"\x00\x05\x00\x08blksize 4 is outside 8-65464\x00"
    assert parse(raw) == Error(8, "blksize 4 is outside 8-65464")


def test_oack_round_trips_through_tftpy():
    packet = TftpPacketFactory().parse(encode_oack({"blksize": "1468", "tsize": "42"}))
    assert packet.options == {"blksize": "1468", "tsize": "42"}


@pytest.mark.parametrize("raw", [
    b"", b"\x00", b"\x00\x01", b"\x00\x01name-without-terminators",
    b"\x00\x01\xff\xfe\x00octet\x00",  # not ASCII: tftpy raises UnicodeDecodeError
    b"\x00\x01a\x00octet\x00blksize\x00512\x00trailing",  # tftpy raises struct.error
    b"\x00\x01a\x00octet\x00blksize\x00",  # option without value
    b"\x00\x09abcd",  # no such opcode
    b"\x00\x05\x00",  # short ERROR
])
def test_malformed_datagrams_raise_one_exception_type(raw: bytes):
    with pytest.raises(Malformed):
        parse(raw)
