"""The admin interface's bearer token: who may read and change the fleet from elsewhere.

Requests from loopback are the local admin's (as the CLI is); any other address must
send ``Authorization: Bearer <token>`` (RFC 6750 section 2.1). The token comes from
:mod:`secrets`, lives in a 0600 file made when serve first starts, and is compared
in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from ipaddress import ip_address
from pathlib import Path

from netboot.errors import NetbootError
from netboot.host.files import atomic_write

TOKEN_BYTES = 32
BEARER = "Bearer "  # RFC 6750's scheme, with its space


def ensure_token(path: Path) -> str:
    """The token in ``path``, made (0600, atomically) if there is none yet."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        atomic_write(path, f"{token}\n".encode(), mode=0o600)
        return token
    if not token:
        raise NetbootError(f"the admin token file {path} is empty: delete it and serve makes "
                           "a new one")
    return token


def authorized(peer: str, authorization: str | None, token: str) -> bool:
    """Whether a request from ``peer`` with this ``Authorization`` header may go on."""
    if ip_address(peer.removeprefix("::ffff:")).is_loopback:
        return True
    if authorization is None or not authorization.startswith(BEARER):
        return False
    return hmac.compare_digest(authorization[len(BEARER):].strip().encode(), token.encode())
