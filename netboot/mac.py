"""Ethernet MAC addresses as people type them, stored in one normal form."""

import re

from netboot.errors import ValidationError

_SEPARATED = re.compile(r"^([0-9a-f]{2})([:-])((?:[0-9a-f]{2}\2){4}[0-9a-f]{2})$")
_CISCO = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")
_BARE = re.compile(r"^[0-9a-f]{12}$")


def normalize_mac(text: str) -> str:
    """Return ``aa:bb:cc:dd:ee:ff`` for any accepted spelling, or raise.

    Accepted: ``aa:bb:cc:dd:ee:ff``, ``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff``
    and ``aabbccddeeff``. Multicast (including broadcast) and all-zero
    addresses are refused: no NIC boots with one, so it is always a typo.
    """
    raw = text.strip().lower()
    if _SEPARATED.match(raw):
        digits = raw.replace(":", "").replace("-", "")
    elif _CISCO.match(raw) or _BARE.match(raw):
        digits = raw.replace(".", "")
    else:
        raise ValidationError(
            f"{text!r} is not a MAC address "
            "(expected aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff or aabbccddeeff)"
        )
    if digits == "0" * 12:
        raise ValidationError(f"{text!r} is the all-zero MAC address, which no NIC uses")
    if int(digits[:2], 16) & 0x01:
        kind = "broadcast" if digits == "f" * 12 else "multicast"
        raise ValidationError(f"{text!r} is a {kind} MAC address, not a machine's")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def mac_bytes(mac: str) -> bytes:
    """The 6 bytes of a normalised MAC (as in a DHCP ``chaddr``)."""
    return bytes.fromhex(mac.replace(":", ""))


def mac_from_bytes(raw: bytes) -> str:
    """Normal form of the first 6 bytes of ``raw``."""
    return ":".join(f"{b:02x}" for b in raw[:6])
