"""Client DHCP messages shaped like those of real firmware, built with scapy.

Option sets and values follow captures of each firmware: iPXE 1.21 (Debian's
undionly.kpxe and ipxe.efi in QEMU), an Intel Boot Agent PXE ROM, EDK2/OVMF
on ARM64 and its UEFI HTTP boot.
"""

from __future__ import annotations

from scapy.layers.dhcp import BOOTP, DHCP

from netboot.names import mac_bytes

UUID = b"\x00" + bytes.fromhex("6f1b43a2c1d84e1e9a2ab5bd0f0c7e11")  # option 97: type 0 + GUID
# iPXE's option 175: bus id, version and feature flags (iSCSI, HTTP, DNS, PXEEXT...).
IPXE_175 = bytes.fromhex("b1 05 01 80 86 10 0e  eb 03 01 15 00  17 01 01  15 01 01  13 01 01"
                         " 11 01 01  21 01 01  10 01 02")
IPXE_PARAMS = [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132,
               133, 134, 135, 175, 203]
ROM_PARAMS = [1, 2, 3, 5, 6, 11, 12, 13, 15, 16, 17, 18, 43, 54, 60, 66, 67, 128, 129, 130,
              131, 132, 133, 134, 135]
UEFI_PARAMS = [1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54,
               58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135]


def frame(mac: str, message_type: str, options: list, *, xid: int = 0x5EED1234,
          flags: int = 0, ciaddr: str = "0.0.0.0", giaddr: str = "0.0.0.0", hops: int = 0,
          secs: int = 4) -> bytes:
    """The bytes of a client message from ``mac`` (scapy adds the magic cookie)."""
    packet = BOOTP(op=1, htype=1, hlen=6, hops=hops, xid=xid, secs=secs, flags=flags,
                   ciaddr=ciaddr, giaddr=giaddr, chaddr=mac_bytes(mac) + bytes(10)) / DHCP(
        options=[("message-type", message_type), *options, "end"])
    return bytes(packet)


def ipxe_bios(mac: str, message_type: str = "discover", extra: list | None = None, **kw) -> bytes:
    """iPXE's undionly.kpxe after chainloading: user class iPXE, option 175, arch 0."""
    return frame(mac, message_type, [
        ("max_dhcp_size", 1472),
        ("pxe_client_architecture", b"\x00\x00"),
        ("pxe_client_network_interface", b"\x01\x02\x01"),
        ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"),
        ("user_class", b"iPXE"),
        ("param_req_list", IPXE_PARAMS),
        (175, IPXE_175),
        ("client_id", b"\x01" + mac_bytes(mac)),
        ("pxe_client_machine_identifier", UUID),
        *(extra or []),
    ], **kw)


def ipxe_uefi(mac: str, message_type: str = "discover", extra: list | None = None, **kw) -> bytes:
    """iPXE's ipxe.efi on x86-64 UEFI: arch 7 (EFI BC), as OVMF's iPXE sends it."""
    return frame(mac, message_type, [
        ("max_dhcp_size", 1472),
        ("pxe_client_architecture", b"\x00\x07"),
        ("pxe_client_network_interface", b"\x01\x03\x10"),
        ("vendor_class_id", b"PXEClient:Arch:00007:UNDI:003016"),
        ("user_class", b"iPXE"),
        ("param_req_list", IPXE_PARAMS),
        (175, IPXE_175),
        ("client_id", b"\x01" + mac_bytes(mac)),
        *(extra or []),
    ], **kw)


def intel_rom(mac: str, message_type: str = "discover", extra: list | None = None, **kw) -> bytes:
    """An Intel Boot Agent PXE ROM on BIOS: vendor class PXEClient, arch 0, no user class."""
    return frame(mac, message_type, [
        ("max_dhcp_size", 1260),
        ("param_req_list", ROM_PARAMS),
        ("pxe_client_architecture", b"\x00\x00"),
        ("pxe_client_network_interface", b"\x01\x02\x01"),
        ("pxe_client_machine_identifier", UUID),
        ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"),
        *(extra or []),
    ], **kw)


def uefi_arm64(mac: str, message_type: str = "discover", extra: list | None = None,
               **kw) -> bytes:
    """EDK2 PXE on ARM64: arch 11."""
    return frame(mac, message_type, [
        ("max_dhcp_size", 1472),
        ("param_req_list", UEFI_PARAMS),
        ("pxe_client_machine_identifier", UUID),
        ("pxe_client_network_interface", b"\x01\x03\x00"),
        ("pxe_client_architecture", b"\x00\x0b"),
        ("vendor_class_id", b"PXEClient:Arch:00011:UNDI:003000"),
        *(extra or []),
    ], **kw)


def uefi_http(mac: str, message_type: str = "discover", extra: list | None = None,
              **kw) -> bytes:
    """EDK2 UEFI HTTP boot on x86-64: arch 16, vendor class HTTPClient."""
    return frame(mac, message_type, [
        ("max_dhcp_size", 1472),
        ("param_req_list", UEFI_PARAMS),
        ("pxe_client_machine_identifier", UUID),
        ("pxe_client_network_interface", b"\x01\x03\x00"),
        ("pxe_client_architecture", b"\x00\x10"),
        ("vendor_class_id", b"HTTPClient:Arch:00016:UNDI:003000"),
        *(extra or []),
    ], **kw)


def plain(mac: str, message_type: str = "discover", extra: list | None = None, **kw) -> bytes:
    """A Linux DHCP client (no PXE options at all)."""
    return frame(mac, message_type, [("param_req_list", [1, 3, 6, 12, 15, 28, 66, 67]),
                                     *(extra or [])], **kw)


def decode(data: bytes) -> BOOTP:
    """A reply decoded by scapy, the independent reading every test checks against."""
    return BOOTP(data)


def options(reply: BOOTP) -> dict:
    """The reply's options by code number (scapy gives names; tests compare numbers)."""
    from scapy.layers.dhcp import DHCPRevOptions

    out: dict = {}
    for item in reply[DHCP].options:
        if isinstance(item, tuple):
            name, *values = item
            code = name if isinstance(name, int) else DHCPRevOptions[name][0]
            out[code] = values[0] if len(values) == 1 else values
    return out
