"""IPMI over the LAN through ipmitool: the command lines, reading their answers, and the
adapter that runs them.

The password goes to ipmitool as ``-f FILE``: a file of mode 0600 in a private
temporary directory (0700), removed as soon as the command ends. It is never on a
command line (``ps`` shows those to every user) nor in the environment (``-E``:
readable by the user's other processes through /proc). ``-C 3`` is the cipher
suite (HMAC-SHA1, AES-128) every IPMI 2.0 BMC has; ipmitool 1.8.19's default stalls.
``-v`` makes ipmitool name why a session failed (``RAKP 2 HMAC is invalid``: a
wrong password), which its plain message does not.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from netboot.host.files import private_file
from netboot.host.run import not_installed
from netboot.power.bmc import Bmc, BmcError, PowerState

IPMITOOL = "ipmitool"
TIMEOUT = 60.0  # seconds: ipmitool gives up on a silent BMC after ~20 s by itself
_STATE = re.compile(r"^Chassis Power is (on|off)\s*$", re.MULTILINE)
BOOTDEV_DONE = "Set Boot Device to pxe"
PRIVATE_PREFIX = "netboot-bmc-"  # the password file's directory, in the temporary directory


class Command(Enum):
    """One ipmitool command, as the words after the options."""

    STATUS = ("chassis", "power", "status")
    ON = ("chassis", "power", "on")
    OFF = ("chassis", "power", "off")
    SOFT = ("chassis", "power", "soft")  # the ACPI power button: the OS shuts down
    CYCLE = ("chassis", "power", "cycle")
    BOOTDEV_PXE = ("chassis", "bootdev", "pxe")  # one-shot: the next boot only


def ipmitool_argv(command: Command, bmc: Bmc, password_file: Path) -> list[str]:
    """The ipmitool command line for ``command`` on ``bmc``; the password stays in its file."""
    return [IPMITOOL, "-I", "lanplus", "-C", "3", "-H", bmc.address, "-p", str(bmc.port),
            "-U", bmc.username, "-f", str(password_file), "-v", *command.value]


@dataclass(frozen=True)
class Answer:
    """What ipmitool said."""

    returncode: int
    stdout: str
    stderr: str


def power_state(bmc: Bmc, answer: Answer) -> PowerState:
    """The state ``chassis power status`` reported."""
    found = _STATE.search(answer.stdout)
    if found is None:
        raise BmcError(f"BMC {bmc.where} answered the power status with "
                       f"{_said(answer)!r}, not 'Chassis Power is on|off'")
    return PowerState(found.group(1))


def check_bootdev(bmc: Bmc, answer: Answer) -> None:
    """``chassis bootdev pxe`` may be refused with exit status 0: success is its line."""
    if BOOTDEV_DONE not in answer.stdout:
        raise BmcError(f"BMC {bmc.where} did not set the next boot to the network: "
                       f"{_said(answer) or 'no answer'}")


def failure(bmc: Bmc, answer: Answer) -> BmcError:
    """The one clear error for a command that failed (exit status not 0)."""
    said = answer.stderr + answer.stdout
    if "RAKP 2 HMAC is invalid" in said:
        return BmcError(f"BMC {bmc.where} refused user {bmc.username}: wrong password?")
    if "unauthorized name" in said:
        return BmcError(f"BMC {bmc.where} has no user {bmc.username}")
    if "Address lookup for" in said:
        return BmcError(f"BMC {bmc.where}: no such host name ({bmc.address} does not resolve)")
    if "Get Auth Capabilities error" in said or "Get Channel Authentication" in said:
        return BmcError(f"BMC {bmc.where} does not answer IPMI over the LAN: wrong address or "
                        "port, or not reachable from here")
    return BmcError(f"BMC {bmc.where}: {_said(answer) or f'ipmitool exit {answer.returncode}'}")


def _said(answer: Answer) -> str:
    """ipmitool's last word: its last error line, else its last line."""
    lines = [line.strip() for line in (answer.stderr + "\n" + answer.stdout).splitlines()
             if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("error", "unable", "invalid"))]
    return (errors or lines or [""])[-1]


class IpmiTool:
    """One BMC, reached by running ipmitool once per command."""

    def __init__(self, bmc: Bmc, timeout: float = TIMEOUT) -> None:
        self.bmc = bmc
        self.timeout = timeout

    def run(self, command: Command) -> Answer:
        """Run ``command``; BmcError, naming the cause, if ipmitool fails."""
        with private_file(self.bmc.password, PRIVATE_PREFIX) as secret:
            argv = ipmitool_argv(command, self.bmc, secret)
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                      text=True, timeout=self.timeout, check=False)
            except FileNotFoundError:
                raise BmcError(not_installed(IPMITOOL)) from None
            except subprocess.TimeoutExpired:
                raise BmcError(f"BMC {self.bmc.where}: no answer within "
                               f"{self.timeout:.0f} s") from None
        answer = Answer(done.returncode, done.stdout, done.stderr)
        if answer.returncode != 0:
            raise failure(self.bmc, answer)
        return answer

    def status(self) -> PowerState:
        return power_state(self.bmc, self.run(Command.STATUS))

    def on(self) -> None:
        self.run(Command.ON)

    def off(self) -> None:
        self.run(Command.OFF)

    def soft(self) -> None:
        self.run(Command.SOFT)

    def cycle(self) -> None:
        self.run(Command.CYCLE)

    def boot_from_network(self) -> None:
        check_bootdev(self.bmc, self.run(Command.BOOTDEV_PXE))

