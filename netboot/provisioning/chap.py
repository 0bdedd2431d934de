"""CHAP credentials for a client's iSCSI sessions."""

import secrets
import string

SECRET_LENGTH = 16
# Letters and digits only: no character needs quoting in iscsid.conf, iPXE
# URIs, tgtd's comma-separated request parameters or a shell, and 62**16 is
# ample (~95 bits).
_ALPHABET = string.ascii_letters + string.digits


def new_secret() -> str:
    """A fresh 16-character CHAP secret from the ``secrets`` module.

    16 is also the minimum many initiators (Windows, some HBAs) accept.
    """
    return "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def new_secret_pair() -> tuple[str, str]:
    """An incoming and a mutual secret that differ: initiators refuse equal ones."""
    incoming = new_secret()
    mutual = new_secret()
    while mutual == incoming:
        mutual = new_secret()
    return incoming, mutual


def mask(secret: str) -> str:
    """What people see of a secret unless they ask for it."""
    return "*" * len(secret) if secret else ""
