"""Which driver talks to a BMC, and a netboot without sushy (the extra redfish)."""

import sys

import pytest

from netboot.power.bmc import Bmc, BmcError, BmcKind
from netboot.power.control import driver
from netboot.power.ipmi import IpmiTool
from netboot.power.redfish import RedfishSystem

IPMI = Bmc("198.18.0.5", "admin", "pw", 623, BmcKind.IPMI)
REDFISH = Bmc("198.18.0.5", "admin", "pw", 443, BmcKind.REDFISH)


def test_each_kind_of_bmc_has_its_driver():
    assert isinstance(driver(IPMI), IpmiTool)
    assert isinstance(driver(REDFISH), RedfishSystem)


def test_without_sushy_a_redfish_bmc_says_what_to_install_and_ipmi_still_works(monkeypatch):
    monkeypatch.setitem(sys.modules, "sushy", None)  # import sushy: ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "netboot.power.redfish")
    with pytest.raises(BmcError, match=r"BMC 198.18.0.5:443 speaks Redfish, which needs the "
                                       r"Python package sushy >= 5.14 \(pip install "
                                       r"'netboot\[redfish\]'\)"):
        driver(REDFISH)
    assert isinstance(driver(IPMI), IpmiTool)
