"""DHCPv6 decide(): firmware-shaped messages in (scapy bytes), replies out (decoded by scapy)."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from scapy.layers.dhcp6 import (
    DHCP6,
    DHCP6_Advertise,
    DHCP6_Confirm,
    DHCP6_InfoRequest,
    DHCP6_RelayForward,
    DHCP6_RelayReply,
    DHCP6_Release,
    DHCP6_Reply,
    DHCP6_Request,
    DHCP6_Solicit,
    DHCP6OptBootFileUrl,
    DHCP6OptClientId,
    DHCP6OptClientLinkLayerAddr,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptIfaceId,
    DHCP6OptPref,
    DHCP6OptRapidCommit,
    DHCP6OptRelayMsg,
    DHCP6OptServerId,
    DHCP6OptStatusCode,
    DHCP6OptVendorClass,
)

from netboot.dhcp6.decide import decide
from netboot.dhcp6.packet import duid_ll, parse_packet
from netboot.inventory.clients import Client
from netboot.inventory.stages import Stage
from tests.conftest import BASE_CONFIG, SAMPLE_CLIENT
from tests.support.dhcp6_frames import (
    IAID,
    XID,
    decode,
    ipxe,
    link_local,
    linux,
    ovmf_http,
    ovmf_pxe,
)

MAC = SAMPLE_CLIENT.mac
SERVER_DUID = duid_ll("52:54:00:00:00:fe")
ADDRESS = IPv6Address("fd4e:6574:626f:1::a")  # 198.18.0.10 in 198.18.0.0/24
SOURCE = link_local(MAC)
V6_ONLY = """\
  mode: "off"
dhcp6:
  subnet: fd4e:6574:626f:1::/64
"""


class Clients:
    def __init__(self, *clients: Client) -> None:
        self.by_mac = {client.mac: client for client in clients}

    def find(self, mac: str) -> Client | None:
        return self.by_mac.get(mac)


@pytest.fixture
def config(make_config):
    return make_config(base=BASE_CONFIG.replace("  subnet: 198.18.0.0/24\n",
                                                "  subnet: 198.18.0.0/24\n" + V6_ONLY))


def answer(config, data: bytes, source: IPv6Address = SOURCE, clients=None):
    decision = decide(parse_packet(data, source), config, clients or Clients(SAMPLE_CLIENT),
                      SERVER_DUID)
    return decision, (decode(decision.reply) if decision.reply is not None else None)


def with_server_id():
    return DHCP6OptServerId(duid=SERVER_DUID)


def test_ovmf_pxe_solicit_gets_an_advertise_with_the_fixed_address_and_a_tftp_url(config):
    decision, reply = answer(config, ovmf_pxe())
    assert isinstance(reply, DHCP6_Advertise) and reply.trid == XID
    assert reply[DHCP6OptIA_NA].iaid == IAID
    assert reply[DHCP6OptIAAddress].addr == str(ADDRESS)
    assert reply[DHCP6OptBootFileUrl].optdata == b"tftp://[fd4e:6574:626f:1::1]/ipxe.efi"
    assert reply[DHCP6OptPref].prefval == 255
    assert bytes(reply[DHCP6OptServerId].duid) == SERVER_DUID
    assert decision.mac == MAC and decision.stage is None


def test_ovmf_pxe_request_is_a_dhcp_stage_and_gets_no_pxeclient_class(config):
    """With "PXEClient" EDK2 would ask a boot server on port 4011 for the file."""
    decision, reply = answer(config, ovmf_pxe(DHCP6_Request, 7, with_server_id()))
    assert isinstance(reply, DHCP6_Reply)
    assert reply[DHCP6OptIAAddress].addr == str(ADDRESS)
    assert DHCP6OptVendorClass not in reply
    assert decision.stage is Stage.DHCP


def test_http_boot_gets_ipxe_over_http_on_the_bracketed_address(config):
    _, reply = answer(config, ovmf_http())
    assert reply[DHCP6OptBootFileUrl].optdata == b"http://[fd4e:6574:626f:1::1]:8080/ipxe.efi"
    assert reply[DHCP6OptVendorClass].vcdata[0].data == b"HTTPClient"


def test_ipxe_gets_its_script_url(config):
    _, reply = answer(config, ipxe())
    assert reply[DHCP6OptBootFileUrl].optdata == \
        f"http://[fd4e:6574:626f:1::1]:8080/clients/{MAC}/boot.ipxe".encode()


def test_a_duid_ll_names_the_client_whatever_its_source(config):
    decision, reply = answer(config, linux(MAC), IPv6Address("fe80::1"))
    assert decision.mac == MAC and reply[DHCP6OptIAAddress].addr == str(ADDRESS)


def test_an_unregistered_machine_is_not_answered(config):
    decision, reply = answer(config, ovmf_pxe(), clients=Clients())
    assert reply is None and decision.mac == MAC and "unregistered" in decision.note


def test_a_duid_uuid_from_a_non_eui64_address_is_dropped_as_no_mac(config):
    decision, reply = answer(config, ovmf_pxe(), IPv6Address("fe80::1234"))
    assert reply is None and decision.drop == "no-mac"


def test_a_request_for_another_server_is_not_answered(config):
    other = DHCP6OptServerId(duid=duid_ll("52:54:00:00:00:99"))
    decision, reply = answer(config, ovmf_pxe(DHCP6_Request, 7, other))
    assert reply is None and "another server" in decision.note


def test_a_solicit_naming_a_server_is_discarded(config):
    _, reply = answer(config, ovmf_pxe(DHCP6_Solicit, 7, with_server_id()))
    assert reply is None


def test_rapid_commit_solicit_gets_a_reply_and_is_the_dhcp_stage(config):
    decision, reply = answer(config, ovmf_pxe(DHCP6_Solicit, 7, DHCP6OptRapidCommit()))
    assert isinstance(reply, DHCP6_Reply) and DHCP6OptRapidCommit in reply
    assert decision.stage is Stage.DHCP


def test_information_request_gets_the_url_and_no_address(config):
    _, reply = answer(config, bytes(DHCP6_InfoRequest(trid=XID)
                                    / DHCP6OptClientId(duid=bytes.fromhex("00030001") +
                                                       bytes.fromhex(MAC.replace(":", "")))))
    assert isinstance(reply, DHCP6_Reply) and DHCP6OptIA_NA not in reply


def test_release_of_the_fixed_address_is_acknowledged(config):
    _, reply = answer(config, linux(MAC, DHCP6_Release, with_server_id()))
    assert isinstance(reply, DHCP6_Reply) and reply[DHCP6OptStatusCode].statuscode == 0


def test_confirm_off_link_says_not_on_link(config):
    data = bytes(DHCP6_Confirm(trid=XID) / DHCP6OptClientId(duid=bytes.fromhex("00030001")
                 + bytes.fromhex(MAC.replace(":", ""))) / DHCP6OptIA_NA(
                     iaid=IAID, ianaopts=[DHCP6OptIAAddress(addr="fd00:99::5")]))
    _, reply = answer(config, data)
    assert reply[DHCP6OptStatusCode].statuscode == 4


def test_relayed_solicit_is_known_by_option_79_and_answered_in_a_relay_reply(config):
    inner = ovmf_pxe()
    relayed = bytes(DHCP6_RelayForward(hopcount=0, linkaddr="fd4e:6574:626f:1::fe",
                                       peeraddr="fe80::1234")
                    / DHCP6OptIfaceId(ifaceid=b"port7")
                    / DHCP6OptClientLinkLayerAddr(clladdr=MAC)
                    / DHCP6OptRelayMsg(message=DHCP6(inner)))
    decision, reply = answer(config, relayed, IPv6Address("fd4e:6574:626f:1::fe"))
    assert decision.mac == MAC
    assert isinstance(reply, DHCP6_RelayReply) and reply.peeraddr == "fe80::1234"
    assert reply[DHCP6OptIfaceId].ifaceid == b"port7"
    assert isinstance(reply[DHCP6OptRelayMsg].message, DHCP6_Advertise)


def test_nothing_is_answered_without_dhcp6(make_config):
    decision = decide(parse_packet(ovmf_pxe(), SOURCE), make_config(), Clients(SAMPLE_CLIENT),
                      SERVER_DUID)
    assert decision.reply is None
