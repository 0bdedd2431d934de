"""decide(): firmware-shaped requests in, replies out (decoded by scapy), no I/O."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from netboot.dhcp.decide import DECLINE_HOLD, OFFER_HOLD, Decision, decide
from netboot.dhcp.leases import Decline, Grant, LeaseTable, Release
from netboot.dhcp.packet import encode_reply, parse_request
from netboot.inventory.clients import Client
from tests.conftest import SAMPLE_CLIENT
from tests.support.dhcp_frames import (
    UUID,
    decode,
    frame,
    intel_rom,
    ipxe_bios,
    ipxe_uefi,
    options,
    plain,
    uefi_arm64,
    uefi_http,
)

NOW = 1_800_000_000.0
MAC = SAMPLE_CLIENT.mac
UNKNOWN = "52:54:00:aa:bb:cc"
SERVER = "198.18.0.1"
URL = f"http://{SERVER}:8080/clients/{MAC}/boot.ipxe"
BASE = """\
server:
  interface: nb0
  address: 198.18.0.1
  tftp_root: {tftp_root}
storage:
  state_dir: {state_dir}
dhcp:
  subnet: 198.18.0.0/24
  router: 198.18.0.126
  dns: [198.18.0.53]
  domain: lab.example
  lease_time: 7200
"""


class Clients:
    """The registered clients as :func:`decide` sees them, from a dict: no database."""

    def __init__(self, *clients: Client) -> None:
        self.by_mac = {client.mac: client for client in clients}

    def find(self, mac: str) -> Client | None:
        return self.by_mac.get(mac)

    def owner(self, ip: IPv4Address) -> str | None:
        return next((c.mac for c in self.by_mac.values() if c.ip == ip), None)


@pytest.fixture
def world(make_config):
    """A config, one registered client (the shared sample), an empty lease table."""

    class World:
        def __init__(self, extra: str = "") -> None:
            self.config = make_config(base=BASE + extra)
            self.client = SAMPLE_CLIENT
            self.clients = Clients(SAMPLE_CLIENT)
            self.leases = LeaseTable()

        def ask(self, data: bytes, *, port: int = 67, source=("0.0.0.0", 68),
                now: float = NOW) -> Decision:
            request = parse_request(data, source=source, local_port=port)
            decision = decide(request, self.config, self.leases, self.clients, now)
            for change in decision.changes:
                self.leases.apply(change)
            return decision

        def reply(self, data: bytes, **kw):
            decision = self.ask(data, **kw)
            assert decision.reply is not None, decision.note
            return decode(encode_reply(decision.reply)), decision

    return World


def test_registered_client_is_offered_its_reserved_address(world):
    w = world()
    reply, _ = w.reply(plain(MAC))
    assert reply.yiaddr == str(w.client.ip)
    assert options(reply)[53] == 2


def test_offer_carries_configured_options(world):
    w = world()
    opts = options(w.reply(plain(MAC))[0])
    assert opts[1] == "255.255.255.0"
    assert opts[3] == "198.18.0.126"
    assert opts[6] == "198.18.0.53"
    assert opts[12] == w.client.hostname.encode()
    assert opts[15] == b"lab.example"
    assert opts[28] == "198.18.0.255"
    assert (opts[51], opts[58], opts[59]) == (7200, 3600, 6300)
    assert opts[54] == SERVER


def test_reply_copies_xid_chaddr_flags_and_client_id(world):
    w = world()
    data = plain(MAC, xid=0xCAFEF00D, flags=0x8000, extra=[("client_id", b"\x01abcdef")])
    reply, _ = w.reply(data)
    assert reply.xid == 0xCAFEF00D
    assert reply.flags == 0x8000
    assert reply.chaddr[:6] == bytes.fromhex(MAC.replace(":", ""))
    assert options(reply)[61] == b"\x01abcdef"


def test_intel_rom_on_bios_gets_undionly_by_tftp(world):
    w = world()
    reply, _ = w.reply(intel_rom(MAC))
    opts = options(reply)
    assert reply.file.rstrip(b"\0") == b"undionly.kpxe"
    assert reply.siaddr == SERVER
    assert opts[67] == b"undionly.kpxe"
    assert opts[66] == SERVER.encode()
    assert opts[60] == b"PXEClient"
    assert opts[97] == UUID


def test_intel_rom_gets_pxe_discovery_control(world):
    w = world()
    opts = options(w.reply(intel_rom(MAC))[0])
    assert opts[43] == b"\x06\x01\x08\xff"


def test_bios_with_pxelinux_loader_gets_pxelinux(world):
    w = world("boot:\n  loader: pxelinux\n")
    reply, _ = w.reply(intel_rom(MAC))
    assert reply.file.rstrip(b"\0") == b"pxelinux.0"


def test_ipxe_rom_on_bios_with_pxelinux_loader_gets_pxelinux(world):
    w = world("boot:\n  loader: pxelinux\n")
    reply, _ = w.reply(ipxe_bios(MAC))
    assert reply.file.rstrip(b"\0") == b"pxelinux.0"


def test_ipxe_on_uefi_with_pxelinux_loader_still_gets_its_script(world):
    w = world("boot:\n  loader: pxelinux\n")
    reply, _ = w.reply(ipxe_uefi(MAC))
    assert reply.file.rstrip(b"\0") == URL.encode()


def _uefi_x64(arch: int) -> bytes:
    """OVMF's own PXE (arch 7), or a firmware that sends arch 9."""
    return frame(MAC, "discover", [("pxe_client_architecture", bytes((0, arch))),
                                   ("vendor_class_id",
                                    f"PXEClient:Arch:{arch:05d}:UNDI:003016".encode())])


SHIM = b"secureboot/x64/shimx64.efi"


@pytest.mark.parametrize(("request_", "boot_file"), [
    (lambda: _uefi_x64(7), SHIM),
    (lambda: _uefi_x64(9), SHIM),
    (lambda: ipxe_uefi(MAC), SHIM),  # an iPXE ROM could not start Debian's kernel under SB
    (lambda: intel_rom(MAC), b"undionly.kpxe"),  # BIOS has no Secure Boot: iPXE as before
    (lambda: ipxe_bios(MAC), URL.encode()),
    (lambda: uefi_arm64(MAC), b"arm64/grubnetaa64.efi"),
    (lambda: uefi_http(MAC), f"http://{SERVER}:8080/ipxe.efi".encode()),
], ids=["uefi-arch7", "uefi-arch9", "ipxe-uefi", "bios-rom", "ipxe-bios", "arm64", "http-boot"])
def test_grub_secureboot_loader_gives_uefi_x64_clients_shim(world, request_, boot_file):
    w = world("boot:\n  loader: grub-secureboot\n")
    reply, _ = w.reply(request_())
    assert reply.file.rstrip(b"\0") == boot_file
    assert options(reply)[67] == boot_file


def test_shim_offer_to_a_pxe_rom_carries_pxeclient_and_discovery_control(world):
    w = world("boot:\n  loader: grub-secureboot\n")
    opts = options(w.reply(_uefi_x64(7))[0])
    assert (opts[60], opts[43], opts[66]) == (b"PXEClient", b"\x06\x01\x08\xff", SERVER.encode())


def test_ipxe_on_bios_gets_its_script_url(world):
    w = world()
    reply, _ = w.reply(ipxe_bios(MAC))
    assert reply.file.rstrip(b"\0") == URL.encode()
    assert options(reply)[67] == URL.encode()


def test_ipxe_gets_no_pxedhcp_in_full_mode(world):
    w = world()
    assert options(w.reply(ipxe_uefi(MAC))[0])[175] == b"\xb0\x01\x01"


def test_ipxe_gets_no_pxe_discovery_control(world):
    w = world()
    assert 43 not in options(w.reply(ipxe_bios(MAC))[0])


def test_ipxe_is_recognised_by_option_175_alone(world):
    w = world()
    data = frame(MAC, "discover", [(175, b"\x13\x01\x01"),
                                   ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001")])
    assert w.reply(data)[0].file.rstrip(b"\0") == URL.encode()


def test_uefi_pxe_x64_gets_ipxe_efi(world):
    w = world()
    data = frame(MAC, "discover", [("pxe_client_architecture", b"\x00\x07"),
                                   ("vendor_class_id", b"PXEClient:Arch:00007:UNDI:003016")])
    assert w.reply(data)[0].file.rstrip(b"\0") == b"ipxe.efi"


def test_uefi_arch_9_gets_ipxe_efi(world):
    w = world()
    data = frame(MAC, "discover", [("pxe_client_architecture", b"\x00\x09"),
                                   ("vendor_class_id", b"PXEClient:Arch:00009:UNDI:003016")])
    assert w.reply(data)[0].file.rstrip(b"\0") == b"ipxe.efi"


def test_arm64_uefi_gets_debians_network_grub_for_arm64(world):
    w = world()
    assert w.reply(uefi_arm64(MAC))[0].file.rstrip(b"\0") == b"arm64/grubnetaa64.efi"


def test_an_architecture_without_a_loader_gets_no_offer_and_a_line_naming_it(world):
    w = world()
    arm64_http = frame(MAC, "discover", [
        ("pxe_client_architecture", b"\x00\x13"),
        ("vendor_class_id", b"HTTPClient:Arch:00019:UNDI:003000")])
    decision = w.ask(arm64_http)
    assert decision.reply is None and decision.warning
    assert "no boot loader for architecture EFI_ARM64_HTTP (19)" in decision.note


def test_uefi_http_boot_gets_an_http_url_and_httpclient(world):
    w = world()
    reply, _ = w.reply(uefi_http(MAC))
    assert reply.file.rstrip(b"\0") == f"http://{SERVER}:8080/ipxe.efi".encode()
    assert options(reply)[60] == b"HTTPClient"


def test_a_pxe_boot_of_an_architecture_without_a_loader_gets_no_offer(world):
    w = world()
    data = frame(MAC, "discover", [("pxe_client_architecture", b"\x00\x06"),
                                   ("vendor_class_id", b"PXEClient:Arch:00006:UNDI:003016")])
    decision = w.ask(data)
    assert decision.reply is None and decision.warning
    assert "no boot loader for architecture EFI_IA32 (6)" in decision.note


def test_offer_to_client_without_address_goes_to_yiaddr_at_chaddr(world):
    w = world()
    reply = w.ask(plain(MAC)).reply
    assert (reply.destination, reply.to_chaddr) == ((str(w.client.ip), 68), True)


def test_offer_to_client_that_sets_the_broadcast_flag_is_broadcast(world):
    w = world()
    reply = w.ask(plain(MAC, flags=0x8000)).reply
    assert (reply.destination, reply.to_chaddr) == (("255.255.255.255", 68), False)


def test_renewing_client_is_acked_by_unicast(world):
    w = world()
    ip = str(w.client.ip)
    decision = w.ask(plain(MAC, "request", ciaddr=ip), source=(ip, 68))
    assert decision.reply.destination == (ip, 68)
    reply = decode(encode_reply(decision.reply))
    assert options(reply)[53] == 5
    assert reply.ciaddr == ip
    assert reply.yiaddr == ip


def test_selecting_request_is_acked_and_records_dhcp_stage(world):
    w = world()
    data = ipxe_bios(MAC, "request", extra=[("server_id", SERVER),
                                            ("requested_addr", str(w.client.ip))])
    decision = w.ask(data)
    assert options(decode(encode_reply(decision.reply)))[53] == 5
    assert decision.stage == "dhcp"


def test_request_for_wrong_address_is_naked_by_broadcast(world):
    w = world()
    decision = w.ask(plain(MAC, "request", extra=[("requested_addr", "198.18.0.77")]))
    reply = decode(encode_reply(decision.reply))
    assert options(reply)[53] == 6
    assert decision.reply.destination == ("255.255.255.255", 68)
    assert reply.yiaddr == "0.0.0.0"


def test_request_for_address_off_the_subnet_is_naked(world):
    w = world()
    decision = w.ask(plain(MAC, "request", extra=[("requested_addr", "10.1.2.3")]))
    assert options(decode(encode_reply(decision.reply)))[53] == 6


def test_request_naming_another_server_is_ignored(world):
    w = world()
    data = plain(MAC, "request", extra=[("server_id", "198.18.0.99"),
                                        ("requested_addr", str(w.client.ip))])
    assert w.ask(data).reply is None


def test_relayed_discover_goes_to_the_relay_with_option_82(world):
    w = world()
    agent = b"\x01\x06port-7\x02\x04sw01"
    data = intel_rom(MAC, giaddr="198.18.0.126", hops=1,
                     extra=[("relay_agent_information", agent)])
    decision = w.ask(data, source=("198.18.0.126", 67))
    reply = decode(encode_reply(decision.reply))
    assert decision.reply.destination == ("198.18.0.126", 67)
    assert reply.giaddr == "198.18.0.126"
    assert options(reply)[82] == agent
    assert reply[0].payload.options[-2][0] == "relay_agent_information"  # last before END


def test_relay_off_the_subnet_is_ignored(world):
    w = world()
    assert w.ask(plain(MAC, giaddr="10.9.9.1")).reply is None


def test_relayed_nak_sets_the_broadcast_flag(world):
    w = world()
    data = plain(MAC, "request", giaddr="198.18.0.126",
                 extra=[("requested_addr", "198.18.0.77")])
    reply = decode(encode_reply(w.ask(data).reply))
    assert reply.flags & 0x8000


def test_inform_is_acked_without_lease_time(world):
    w = world()
    ip = str(w.client.ip)
    decision = w.ask(intel_rom(MAC, "inform", ciaddr=ip), source=(ip, 68))
    reply = decode(encode_reply(decision.reply))
    assert options(reply)[53] == 5
    assert 51 not in options(reply)
    assert reply.yiaddr == "0.0.0.0"
    assert decision.reply.destination == (ip, 68)


def test_unknown_machine_is_ignored_by_default(world):
    w = world()
    decision = w.ask(intel_rom(UNKNOWN))
    assert decision.reply is None
    assert decision.unknown


def test_unknown_machine_under_boot_policy_gets_a_dynamic_address(world):
    w = world("  unknown: boot\n")
    reply, decision = w.reply(ipxe_bios(UNKNOWN))
    assert w.config.dhcp.in_dynamic_range(IPv4Address(reply.yiaddr))
    assert reply.file.rstrip(b"\0") == f"http://{SERVER}:8080/clients/{UNKNOWN}/boot.ipxe".encode()
    assert decision.changes == (Grant(UNKNOWN, IPv4Address(reply.yiaddr), NOW + OFFER_HOLD,
                                      persist=False),)


def test_offered_dynamic_address_is_not_offered_to_another_machine(world):
    w = world("  unknown: boot\n")
    first = w.reply(plain(UNKNOWN))[0].yiaddr
    second = w.reply(plain("52:54:00:aa:bb:cd"))[0].yiaddr
    assert first != second


def test_dynamic_ack_grants_a_persistent_lease(world):
    w = world("  unknown: boot\n")
    ip = w.reply(plain(UNKNOWN))[0].yiaddr
    decision = w.ask(plain(UNKNOWN, "request", extra=[("server_id", SERVER),
                                                      ("requested_addr", ip)]))
    assert decision.changes == (Grant(UNKNOWN, IPv4Address(ip), NOW + 7200),)
    assert decision.stage is None


def test_same_mac_gets_the_same_dynamic_address_again(world):
    w = world("  unknown: boot\n")
    ip = w.reply(plain(UNKNOWN))[0].yiaddr
    w.ask(plain(UNKNOWN, "request", extra=[("server_id", SERVER), ("requested_addr", ip)]))
    later = NOW + 10 * 7200
    assert w.reply(plain(UNKNOWN), now=later)[0].yiaddr == ip


def test_init_reboot_without_a_lease_is_silent(world):
    w = world("  unknown: boot\n")
    assert w.ask(plain(UNKNOWN, "request", extra=[("requested_addr", "198.18.0.200")])).reply \
        is None


def test_exhausted_pool_gives_no_offer_and_warns(world):
    w = world("  unknown: boot\n  range_start: 198.18.0.200\n  range_end: 198.18.0.201\n")
    w.reply(plain("52:54:00:00:00:01"))
    w.reply(plain("52:54:00:00:00:02"))
    decision = w.ask(plain("52:54:00:00:00:03"))
    assert decision.reply is None
    assert decision.warning
    assert "exhausted" in decision.note


def test_expired_lease_address_is_reused_when_pool_is_full(world):
    w = world("  unknown: boot\n  range_start: 198.18.0.200\n  range_end: 198.18.0.200\n")
    w.reply(plain("52:54:00:00:00:01"))
    reply, _ = w.reply(plain("52:54:00:00:00:02"), now=NOW + OFFER_HOLD + 1)
    assert reply.yiaddr == "198.18.0.200"


def test_decline_takes_the_address_out_of_the_pool(world):
    w = world("  unknown: boot\n")
    ip = w.reply(plain(UNKNOWN))[0].yiaddr
    decision = w.ask(plain(UNKNOWN, "decline", extra=[("server_id", SERVER),
                                                      ("requested_addr", ip)]))
    assert decision.changes == (Decline(UNKNOWN, IPv4Address(ip), NOW + DECLINE_HOLD),)
    assert w.reply(plain(UNKNOWN))[0].yiaddr != ip


def test_release_ends_the_lease(world):
    w = world("  unknown: boot\n")
    ip = w.reply(plain(UNKNOWN))[0].yiaddr
    decision = w.ask(plain(UNKNOWN, "release", ciaddr=ip, extra=[("server_id", SERVER)]))
    assert decision.reply is None
    assert decision.changes == (Release(UNKNOWN, IPv4Address(ip)),)


def test_off_mode_never_replies(world):
    w = world("  mode: \"off\"\n")
    assert w.ask(plain(MAC)).reply is None


def test_proxy_offer_has_boot_file_but_no_address(world):
    w = world("  mode: proxy\n")
    reply, _ = w.reply(intel_rom(MAC))
    opts = options(reply)
    assert reply.yiaddr == "0.0.0.0"
    assert reply.file.rstrip(b"\0") == b"undionly.kpxe"
    assert opts[60] == b"PXEClient"
    assert 51 not in opts and 1 not in opts


def test_proxy_ignores_non_pxe_clients(world):
    w = world("  mode: proxy\n")
    assert w.ask(plain(MAC)).reply is None


def test_proxy_request_on_4011_is_acked_to_its_source(world):
    w = world("  mode: proxy\n")
    data = ipxe_bios(MAC, "request", ciaddr="198.18.0.50")
    decision = w.ask(data, port=4011, source=("198.18.0.50", 4011))
    assert decision.reply.destination == ("198.18.0.50", 4011)
    reply = decode(encode_reply(decision.reply))
    assert options(reply)[53] == 5
    assert reply.file.rstrip(b"\0") == URL.encode()


def test_proxy_ipxe_gets_no_no_pxedhcp(world):
    w = world("  mode: proxy\n")
    assert 175 not in options(w.reply(ipxe_bios(MAC))[0])


def test_proxy_leaves_requests_on_port_67_to_the_dhcp_server(world):
    w = world("  mode: proxy\n")
    assert w.ask(intel_rom(MAC, "request", extra=[("requested_addr", "198.18.0.50")])).reply \
        is None


def test_arch_is_read_from_vendor_class_without_option_93(world):
    w = world()
    data = frame(MAC, "discover", [("vendor_class_id", b"PXEClient:Arch:00007:UNDI:003016")])
    assert w.reply(data)[0].file.rstrip(b"\0") == b"ipxe.efi"


def test_renewal_ack_records_no_stage(world):
    w = world()
    ip = str(w.client.ip)
    assert w.ask(plain(MAC, "request", ciaddr=ip), source=(ip, 68)).stage is None
