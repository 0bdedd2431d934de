"""The ``chassis_control`` program of a lab client's simulated BMC: ipmi_sim runs it to
read and change the machine's power and next boot device, and it starts and stops the
client's VM as `netboot lab boot` would (the same :func:`netboot.lab.vm.qemu_argv`).

``python -m netboot.lab.bmc_control DIR get power boot`` prints ``power:1`` and
``boot:default``, one ``name:value`` line per parameter; ``... DIR set power 1 boot pxe``
changes them in order; ``set shutdown 1`` (ipmitool's ``chassis power soft``) presses the
VM's ACPI power button through its QMP socket. DIR (see :mod:`netboot.lab.bmc`) holds the
VM's spec (``vm.json``), its pid file, its QMP socket, the one-shot boot device, its
console and QEMU's messages.
ipmi_sim runs this inside the lab's namespace, so the VM's tap is there to open.

The lab's VMs have no disk: they boot from the network whatever the boot device, which
is recorded, and consumed by the next power-on, as a real BMC's one-shot boot flag is.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from netboot.errors import NetbootError
from netboot.lab import qmp
from netboot.lab.vm import STOP_GRACE, VmSpec, spec_from_json, start_detached

SPEC = "vm.json"
PID = "qemu.pid"
BOOTDEV = "bootdev"  # the next boot device, one-shot
CONSOLE = "console.log"  # the VM's serial console, raw, appended boot after boot
QEMU_LOG = "qemu.log"
QMP = "qmp.sock"  # the VM's QMP server, through which a soft off presses its power button
LOG = "control.log"  # each call, for a failed test's explanation
BOOT_DEVICES = ("none", "default", "pxe", "cdrom", "bios")


class ControlError(Exception):
    """An unknown operation or value: said on stdout, exit 1 (ipmi_sim refuses the command)."""


def load_spec(directory: Path) -> VmSpec:
    return spec_from_json(json.loads((directory / SPEC).read_text()))


def running_pid(directory: Path) -> int | None:
    """The pid of the VM this BMC started, while it runs (not a zombie, not a reused pid)."""
    try:
        pid = int((directory / PID).read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return None
    name = load_spec(directory).name.encode()
    if state == "Z" or b"-name" not in argv or name not in argv:
        return None
    return pid


def power_on(directory: Path) -> None:
    """Start the VM unless it runs; the boot device set for this boot is used up."""
    if running_pid(directory) is not None:
        return
    bootdev = directory / BOOTDEV
    boot = bootdev.read_text().strip() if bootdev.exists() else "default"
    bootdev.unlink(missing_ok=True)
    pid = start_detached(load_spec(directory), directory / CONSOLE, directory / QEMU_LOG)
    (directory / PID).write_text(f"{pid}\n")
    _log(directory, f"started VM, pid {pid}, boot device {boot}")


def power_off(directory: Path) -> None:
    """Stop the VM if it runs: SIGTERM (QEMU exits at once), SIGKILL after the grace."""
    pid = running_pid(directory)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while running_pid(directory) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    if running_pid(directory) == pid:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _log(directory, f"stopped VM, pid {pid}")


def soft_off(directory: Path) -> None:
    """Press the running VM's ACPI power button (QMP ``system_powerdown``): its OS shuts
    down and powers off, and QEMU (``-no-reboot``) exits; an OS that ignores it stays up."""
    if running_pid(directory) is None:
        return
    qmp.execute(directory / QMP, qmp.POWERDOWN)
    _log(directory, "pressed the VM's power button (ACPI)")


def get(directory: Path, names: Sequence[str]) -> list[str]:
    answers = []
    for name in names:
        if name == "power":
            answers.append(f"power:{int(running_pid(directory) is not None)}")
        elif name == "boot":
            bootdev = directory / BOOTDEV
            answers.append(f"boot:{bootdev.read_text().strip() if bootdev.exists() else 'default'}")
        else:
            raise ControlError(f"Invalid parameter: {name}")
    return answers


def set_(directory: Path, pairs: Sequence[str]) -> None:
    if len(pairs) % 2:
        raise ControlError(f"a value is missing: {' '.join(pairs)}")
    for name, value in zip(pairs[::2], pairs[1::2], strict=True):
        match name:
            case "power":
                if value == "1":
                    power_on(directory)
                else:
                    power_off(directory)
            case "reset":  # the VMs run with -no-reboot: off, then on
                if running_pid(directory) is not None:
                    power_off(directory)
                    power_on(directory)
            case "shutdown":  # chassis power soft: the ACPI power button; the OS powers off
                soft_off(directory)
            case "boot":
                if value not in BOOT_DEVICES:
                    raise ControlError(f"Invalid boot value: {value}")
                if value in ("none", "default"):
                    (directory / BOOTDEV).unlink(missing_ok=True)
                else:
                    (directory / BOOTDEV).write_text(f"{value}\n")
            case "identify":
                pass
            case _:
                raise ControlError(f"Invalid parameter: {name}")


def _log(directory: Path, line: str) -> None:
    with (directory / LOG).open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m netboot.lab.bmc_control DIR get NAME... | set NAME VALUE...")
        return 1
    directory, operation, rest = Path(argv[0]), argv[1], list(argv[2:])
    _log(directory, " ".join([operation, *rest]))
    try:
        if operation == "get":
            print("\n".join(get(directory, rest)))
        elif operation == "set":
            set_(directory, rest)
        else:
            raise ControlError(f"Unknown operation: {operation}")
    except (ControlError, NetbootError) as err:
        _log(directory, str(err))
        print(err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
