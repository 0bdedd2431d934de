"""The soft power-off sequence as a decision: ask the OS, wait, cut the power."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netboot.power.bmc import PowerState
from netboot.power.shutdown import OffStep, SoftOff, next_step, outcome

ON, OFF = PowerState.ON, PowerState.OFF
START = SoftOff(timeout=60)


def test_a_machine_that_is_off_is_done_at_once_and_was_off():
    assert next_step(START, OFF, 0) is OffStep.DONE
    assert outcome(START, 0) == "was off"


def test_a_running_machine_s_os_is_asked_first():
    assert next_step(START, ON, 0) is OffStep.ASK


def test_after_the_ask_it_waits_until_the_timeout():
    asked = replace(START, asked_at=100)
    assert next_step(asked, ON, 100) is OffStep.WAIT
    assert next_step(asked, ON, 159.9) is OffStep.WAIT


def test_an_os_not_off_at_the_timeout_has_its_power_cut():
    assert next_step(replace(START, asked_at=100), ON, 160) is OffStep.FORCE


def test_an_os_that_shut_down_is_done_and_says_how_long_it_took():
    asked = replace(START, asked_at=100)
    assert next_step(asked, OFF, 112) is OffStep.DONE
    assert outcome(asked, 112) == "shut down by its OS in 12 s"


def test_hard_cuts_the_power_without_asking():
    assert next_step(replace(START, hard=True), ON, 0) is OffStep.FORCE


def test_a_refused_soft_request_cuts_the_power_at_once():
    assert next_step(replace(START, refused="BMC x: Invalid data field"), ON, 0) is OffStep.FORCE


@pytest.mark.parametrize(("off", "said"), [
    (replace(START, hard=True, forced=True), "powered off (hard)"),
    (replace(START, asked_at=0, forced=True),
     "powered off (hard): its OS had not shut down within 60 s"),
    (replace(START, refused="BMC x: no", forced=True),
     "powered off (hard): the BMC refused a soft shutdown (BMC x: no)"),
])
def test_each_way_to_off_says_what_it_did(off, said):
    assert outcome(off, 60) == said
