"""Every DHCPv6 wire number netboot uses, named once, with the RFC that defines it."""

from __future__ import annotations

from enum import IntEnum

SERVER_PORT = 547  # RFC 8415 section 7.2: servers and relays listen here
CLIENT_PORT = 546  # RFC 8415 section 7.2
ALL_RELAY_AGENTS_AND_SERVERS = "ff02::1:2"  # RFC 8415 section 7.1
HOP_COUNT_LIMIT = 8  # RFC 8415 section 7.6: relays nest at most this deep
HARDWARE_ETHERNET = 1  # IANA ARP hardware type, in DUID-LL/LLT and option 79


class MessageType(IntEnum):
    """The msg-type octet (RFC 8415 section 7.3)."""

    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    RECONFIGURE = 10
    INFORMATION_REQUEST = 11
    RELAY_FORW = 12
    RELAY_REPL = 13


class Option(IntEnum):
    """DHCPv6 option codes (RFC 8415 section 21 unless noted)."""

    CLIENTID = 1
    SERVERID = 2
    IA_NA = 3
    IA_TA = 4
    IAADDR = 5
    ORO = 6
    PREFERENCE = 7
    ELAPSED_TIME = 8
    RELAY_MSG = 9
    STATUS_CODE = 13
    RAPID_COMMIT = 14
    USER_CLASS = 15
    VENDOR_CLASS = 16
    INTERFACE_ID = 18
    BOOTFILE_URL = 59  # RFC 5970 section 3.1
    BOOTFILE_PARAM = 60  # RFC 5970 section 3.2
    CLIENT_ARCH_TYPE = 61  # RFC 5970 section 3.3 (the types of DHCPv4 option 93)
    CLIENT_LINKLAYER_ADDR = 79  # RFC 6939: a first-hop relay's view of the client's MAC


class DuidType(IntEnum):
    """DUID types (RFC 8415 section 11.1)."""

    LLT = 1  # link-layer address plus time
    EN = 2  # enterprise number
    LL = 3  # link-layer address
    UUID = 4  # RFC 6355


class StatusCode(IntEnum):
    """Option 13 status codes (RFC 8415 section 21.13)."""

    SUCCESS = 0
    UNSPEC_FAIL = 1
    NO_ADDRS_AVAIL = 2
    NO_BINDING = 3
    NOT_ON_LINK = 4
    USE_MULTICAST = 5


# The enterprise number in a vendor class option (16) netboot sends back to PXE/HTTP
# firmware: 343, Intel's, which EDK2 uses for "PXEClient"/"HTTPClient" (PxeBcDhcp6.c).
PXE_ENTERPRISE = 343
