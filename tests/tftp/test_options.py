"""TFTP option negotiation (RFC 2347, 2348, 2349, 7440) without any I/O."""

from __future__ import annotations

import pytest

from netboot.tftp.options import Limits, Negotiated, OptionError, negotiate


def test_no_options_means_no_oack_and_rfc1350_blocks():
    assert negotiate({}, 1000) == Negotiated(512, 1, 1.0, ())


def test_blksize_in_range_is_accepted_as_asked():
    assert negotiate({"blksize": "1468"}, 10).oack == (("blksize", "1468"),)


def test_blksize_65536_is_lowered_to_65464_not_refused():
    result = negotiate({"blksize": "65536"}, 10)
    assert (result.blksize, result.oack) == (65464, (("blksize", "65464"),))


def test_blksize_below_8_is_refused():
    with pytest.raises(OptionError, match="blksize 7 is outside"):
        negotiate({"blksize": "7"}, 10)


@pytest.mark.parametrize("value", ["", "-1", "+512", " 512", "1_000", "0x200", "512.0"])
def test_non_decimal_option_values_are_refused(value: str):
    with pytest.raises(OptionError, match="not a number"):
        negotiate({"blksize": value}, 10)


def test_tsize_is_answered_with_the_file_size():
    assert negotiate({"tsize": "0"}, 33554432).oack == (("tsize", "33554432"),)


def test_timeout_is_honoured_as_the_retransmission_interval():
    result = negotiate({"timeout": "3"}, 10)
    assert (result.timeout, result.oack) == (3.0, (("timeout", "3"),))


@pytest.mark.parametrize("value", ["6", "30", "255"])
def test_timeout_above_5_seconds_is_left_out_of_the_oack_and_5_is_used(value: str):
    result = negotiate({"timeout": value}, 10)
    assert (result.timeout, result.oack) == (5.0, ())


def test_the_timeout_cap_comes_from_the_limits():
    assert negotiate({"timeout": "30"}, 10, Limits(max_timeout=20)).timeout == 20.0


@pytest.mark.parametrize("value", ["0", "256"])
def test_timeout_outside_1_to_255_is_refused(value: str):
    with pytest.raises(OptionError, match="timeout"):
        negotiate({"timeout": value}, 10)


def test_windowsize_above_the_cap_is_lowered():
    result = negotiate({"windowsize": "1000"}, 10, Limits(max_windowsize=16))
    assert (result.windowsize, result.oack) == (16, (("windowsize", "16"),))


def test_unknown_options_are_left_out_of_the_oack():
    assert negotiate({"multicast": "", "blksize": "1024"}, 10).oack == (("blksize", "1024"),)
