"""One error base class for everything a user can cause or fix.

The CLI turns a :class:`NetbootError` into one sentence on stderr and exit
status 1; anything else is a bug and keeps its traceback.
"""


class NetbootError(Exception):
    """A failure the user can act on; ``str(err)`` is the whole message."""


class ConfigError(NetbootError):
    """A config file is wrong; the message names file, line and key."""

    def __init__(self, path: str, line: int | None, key: str, message: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {key}: {message}")


class ValidationError(NetbootError):
    """A value given on the command line or to an API is not acceptable."""


class NotFound(NetbootError):
    """A named record (client, image, LUN) does not exist."""


class Conflict(NetbootError):
    """A record would clash with an existing one (MAC, hostname, IP, IQN)."""
