"""QEMU's machine protocol (QMP) on a Unix socket: the lab's BMCs press a VM's ACPI power
button through it (``system_powerdown``), as a real BMC does for ``chassis power soft``.

QMP is JSON objects, one per line: the server greets first, the client leaves
capabilities negotiation with ``qmp_capabilities``, then each ``{"execute": ...}`` gets a
``{"return": ...}`` or ``{"error": ...}``, with asynchronous ``{"event": ...}`` lines in
between (QEMU's docs/interop/qmp-spec).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from netboot.lab.topology import LabError

TIMEOUT = 5.0  # seconds for QEMU to answer one command
NEGOTIATE = "qmp_capabilities"
POWERDOWN = "system_powerdown"  # the ACPI power button


def monitor_argv(path: Path) -> tuple[str, ...]:
    """QEMU arguments for a QMP server on the Unix socket ``path``, never waiting for a
    client."""
    return ("-qmp", f"unix:{path},server=on,wait=off")


def execute(path: Path, command: str, timeout: float = TIMEOUT) -> object:
    """Run ``command`` on the QMP server at ``path``; what it returned."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            lines = sock.makefile("rwb")
            _answer(lines, "QMP", path)  # the greeting
            for name in (NEGOTIATE, command):
                lines.write(json.dumps({"execute": name}).encode() + b"\n")
                lines.flush()
                answer = _answer(lines, name, path)
            return answer
    except OSError as err:
        raise LabError(f"QMP {path}: {command}: {err}") from None


def _answer(lines, key: str, path: Path) -> object:
    """The next line that is not an event: the greeting's ``QMP`` or a command's return."""
    while True:
        line = lines.readline()
        if not line:
            raise LabError(f"QMP {path}: closed while waiting for {key}")
        message = json.loads(line)
        if "event" in message:
            continue
        if "error" in message:
            raise LabError(f"QMP {path}: {key}: {message['error'].get('desc', message)}")
        return message.get("QMP" if key == "QMP" else "return")
