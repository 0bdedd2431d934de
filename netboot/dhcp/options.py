"""Every DHCP/BOOTP/PXE wire number netboot uses, named once, with the RFC that defines it."""

from __future__ import annotations

from enum import IntEnum

# RFC 2131 section 3: the four octets that mark the options field as DHCP.
MAGIC_COOKIE = b"\x63\x82\x53\x63"
SERVER_PORT = 67  # RFC 2131 section 4.1
CLIENT_PORT = 68  # RFC 2131 section 4.1
SNAME_SIZE = 64  # RFC 2131 section 2: ``sname``, the optional server host name
FILE_SIZE = 128  # RFC 2131 section 2: ``file``, the NUL-terminated boot file name
PXE_PORT = 4011  # PXE 2.1 specification, section 2.2.5: the proxyDHCP service port


class Op(IntEnum):
    """BOOTP ``op`` (RFC 951)."""

    BOOTREQUEST = 1
    BOOTREPLY = 2


class HardwareType(IntEnum):
    """``htype`` (RFC 1700, IANA ARP hardware types): netboot serves Ethernet only."""

    ETHERNET = 1


class MessageType(IntEnum):
    """Option 53, DHCP message type (RFC 2132 section 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(IntEnum):
    """DHCP option codes (RFC 2132 unless noted)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOSTNAME = 12
    DOMAIN_NAME = 15
    BROADCAST_ADDRESS = 28
    VENDOR_SPECIFIC = 43  # PXE: encapsulated PXE options (PXE 2.1 section 2.4)
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS = 60
    CLIENT_ID = 61
    TFTP_SERVER_NAME = 66
    BOOTFILE_NAME = 67
    USER_CLASS = 77  # RFC 3004
    RELAY_AGENT_INFORMATION = 82  # RFC 3046
    CLIENT_ARCHITECTURE = 93  # RFC 4578
    CLIENT_NDI = 94  # RFC 4578
    CLIENT_UUID = 97  # RFC 4578
    IPXE_ENCAPSULATED = 175  # iPXE's private options (ipxe.org/howto/dhcpd, include/ipxe/dhcp.h)
    END = 255


class IpxeOption(IntEnum):
    """Sub-options of option 175 (iPXE include/ipxe/dhcp.h)."""

    NO_PXEDHCP = 176  # 1: do not wait for ProxyDHCP offers


class PxeOption(IntEnum):
    """Sub-options of option 43 for PXE clients (PXE 2.1 specification, section 2.4)."""

    DISCOVERY_CONTROL = 6


class PxeDiscoveryControl(IntEnum):
    """Bits of PXE sub-option 6 (PXE 2.1 section 2.4, table 2-1)."""

    DISABLE_BROADCAST = 0x01
    DISABLE_MULTICAST = 0x02
    ONLY_LISTED_SERVERS = 0x04
    # Take the boot file name from this offer at once, without a boot server discovery:
    # the value dnsmasq and Pixiecore send so Intel/Broadcom ROMs boot the offered file.
    USE_BOOT_FILE = 0x08


class ClientArch(IntEnum):
    """Option 93 client system architecture (RFC 4578 section 2.1; IANA "Processor
    Architecture Types" registry, which extends it)."""

    BIOS = 0  # Intel x86PC
    NEC_PC98 = 1
    EFI_ITANIUM = 2
    DEC_ALPHA = 3
    ARC_X86 = 4
    INTEL_LEAN = 5
    EFI_IA32 = 6
    EFI_BC = 7  # EFI byte code; in practice every x86-64 UEFI firmware sends 7
    EFI_XSCALE = 8
    EFI_X86_64 = 9
    EFI_ARM32 = 10
    EFI_ARM64 = 11
    EFI_X86_64_HTTP = 16  # UEFI HTTP boot on x86-64
    EFI_ARM64_HTTP = 19  # UEFI HTTP boot on ARM64


# Option 60 prefixes (PXE 2.1 section 2.2; UEFI 2.5 section 24.7 for HTTPClient).
PXE_VENDOR_CLASS = b"PXEClient"
HTTP_VENDOR_CLASS = b"HTTPClient"
# Option 77 value iPXE sends (iPXE include/ipxe/dhcp.h DHCP_USER_CLASS_ID).
IPXE_USER_CLASS = b"iPXE"
