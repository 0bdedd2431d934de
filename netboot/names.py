"""Names people type, each checked once and kept in one normal form: MAC addresses, host
names (RFC 1123), iSCSI qualified names (RFC 3720 section 3.2.6) and image names."""

import re
from ipaddress import IPv4Address, IPv6Address

from netboot.errors import ValidationError


def url_host(address: IPv4Address | IPv6Address) -> str:
    """An address as the host of a URL or an ``ADDRESS:PORT``: an IPv6 one in brackets
    (RFC 3986 section 3.2.2), as URLs, tgtd's portals and iscsistart's want it."""
    return f"[{address}]" if address.version == 6 else str(address)


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# iqn.yyyy-mm.reversed.domain[:label]: the date a valid month, the domain at
# least one label, everything lower case (RFC 3722 stringprep folds case, and
# initiators compare byte-wise, so netboot only ever emits lower case).
_IQN = re.compile(
    r"^iqn\.(?P<year>\d{4})-(?P<month>\d{2})"
    r"\.(?P<domain>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
    r"(?::(?P<label>[a-z0-9.:_-]+))?$"
)
_SEPARATED = re.compile(r"^([0-9a-f]{2})([:-])((?:[0-9a-f]{2}\2){4}[0-9a-f]{2})$")
_CISCO = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")
_BARE = re.compile(r"^[0-9a-f]{12}$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
IQN_MAX = 223  # RFC 3720 section 3.2.6.1: at most 223 bytes


def validate_hostname(name: str) -> str:
    """Return ``name`` lower-cased if it is an RFC 1123 host name, else raise."""
    host = name.strip().lower()
    if not host or len(host) > 253:
        raise ValidationError(f"hostname {name!r} must be 1 to 253 characters")
    for label in host.split("."):
        if not _LABEL.match(label):
            raise ValidationError(
                f"hostname {name!r} is not valid (RFC 1123): each dot-separated label is "
                "1-63 letters, digits or hyphens and neither starts nor ends with a hyphen"
            )
    return host


def hostname_for_mac(mac: str) -> str:
    """Default host name of a client, derived from its normalised MAC."""
    return "node-" + mac.replace(":", "")


def validate_iqn(iqn: str, *, with_label: bool = True) -> str:
    """Return ``iqn`` if valid per RFC 3720 section 3.2.6, else raise.

    ``with_label=False`` validates a naming authority such as
    ``iqn.2026-11.org.example`` (the part before the colon).
    """
    m = _IQN.match(iqn)
    if not m or len(iqn) > IQN_MAX:
        raise ValidationError(
            f"{iqn!r} is not a valid iSCSI qualified name: expected "
            "'iqn.yyyy-mm.reversed.domain:label', lower case, at most 223 bytes"
        )
    if not 1 <= int(m["month"]) <= 12:
        raise ValidationError(f"{iqn!r}: month {m['month']} is not 01-12")
    if with_label and not m["label"]:
        raise ValidationError(f"{iqn!r} has no ':label' part after the naming authority")
    if not with_label and m["label"]:
        raise ValidationError(f"{iqn!r} is a full IQN; a naming authority has no ':label' part")
    return iqn


def initiator_iqn(authority: str, hostname: str) -> str:
    """The IQN a client's initiator uses."""
    return validate_iqn(f"{authority}:initiator:{hostname}")


def target_iqn(authority: str, hostname: str) -> str:
    """The IQN of a client's own target (its root LUN and any extra LUNs)."""
    return validate_iqn(f"{authority}:target:{hostname}")


def looks_like_mac(text: str) -> bool:
    """Whether ``text`` is spelled as a MAC address (any accepted spelling), usable or not.

    Where either a client's MAC or a SAN host's name is accepted, such a text
    always means a client (and is then checked by :func:`normalize_mac`).
    """
    raw = text.strip().lower()
    return bool(_SEPARATED.match(raw) or _CISCO.match(raw) or _BARE.match(raw))


def validate_host_name(name: str) -> str:
    """Return a SAN host's name lower-cased: an RFC 1123 host name not spelled as a MAC
    address (``aabbccddeeff`` would be taken for a client's MAC where both are accepted)."""
    host = validate_hostname(name)
    if looks_like_mac(host):
        raise ValidationError(f"host name {name!r} is spelled as a MAC address, which always "
                              "names a client: choose another name")
    return host


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


def validate_image_name(name: str) -> str:
    """Return ``name`` if it may name a golden image (it is a file name and a tgt/ext4 label
    prefix: lower case, no path separators), else raise."""
    if not _IMAGE.match(name):
        raise ValidationError(f"image name {name!r} is not valid: 1-63 lower-case letters, "
                              "digits, '.', '_' or '-', starting with a letter or digit")
    return name
