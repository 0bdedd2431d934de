"""QEMU virtual machines for the lab: argv, start inside the lab namespace, serial console, stop.

The serial console is the one thing every boot stage writes to (firmware,
iPXE, pxelinux, the kernel, /init), so it is read line by line as it
arrives, stamped with seconds since QEMU started, written to a log file and
handed to whoever waits for a marker (see :mod:`netboot.lab.markers`).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from netboot.host import iproute
from netboot.host.run import not_installed
from netboot.lab.topology import LabError

QEMU = "qemu-system-x86_64"
QEMU_AARCH64 = "qemu-system-aarch64"  # qemu-system-arm
OVMF = Path("/usr/share/ovmf/OVMF.fd")  # Debian's ovmf: CODE and VARS in one image, for -bios
# No option ROM on the NIC (OVMF's own network stack runs) and no PXE in OVMF, v4 or v6
# (edk2 OvmfPkg/RUNTIME_CONFIG.md): the firmware's one network boot option is UEFI HTTP boot.
UEFI_HTTP_BOOT_ONLY = ("-global", "virtio-net-pci.romfile=",
                       "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
                       "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no")
# No option ROM on the NIC and OVMF's PXE over IPv6 only: an IPv6-only boot VLAN's client.
UEFI_PXE_IPV6_ONLY = ("-global", "virtio-net-pci.romfile=",
                      "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
                      "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=yes")
# Debian's ovmf for Secure Boot: code that enforces it (needs SMM), and variables with
# Microsoft's keys enrolled (a fresh copy per VM: the firmware writes to them)
OVMF_SECBOOT_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_MS_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
# Debian's qemu-efi-aarch64 (AAVMF): code and an empty variable store, 64 MiB each as QEMU's
# virt machine's two flash devices want them
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
# A CPU QEMU emulates fast: "max" emulates pointer authentication, which makes the kernel's
# start 5 times slower under TCG
AARCH64_CPU = "cortex-a57"
STOP_GRACE = 5.0
# Terminal control sequences SeaBIOS, OVMF and iPXE write around their text.
_ESCAPES = re.compile(rb"\x1b(?:\[[0-9;?=]*[A-Za-z]|[()][0-9A-Za-z]|[A-Za-z=>])")
_CONTROLS = re.compile(r"[\x00-\x07\x09-\x1f\x7f]")


class Firmware(StrEnum):
    """What the VM boots with."""

    BIOS = "bios"  # SeaBIOS and the NIC's iPXE ROM (ipxe-qemu)
    UEFI = "uefi"  # OVMF
    UEFI_HTTP = "uefi-http"  # OVMF's own UEFI HTTP boot: no option ROM on the NIC, no PXE
    UEFI_IPV6 = "uefi-ipv6"  # OVMF's own PXE over IPv6 only (DHCPv6), for an IPv6-only lab
    # OVMF enforcing Secure Boot with Microsoft's keys; the NIC without its option ROM, so
    # OVMF's own PXE runs (QEMU's iPXE ROM of 2019 breaks shim's fetch of GRUB)
    UEFI_SECUREBOOT = "uefi-secureboot"
    # an ARM64 machine (QEMU's virt) with AAVMF, booting by its own PXE (the NIC without a ROM)
    AARCH64_UEFI = "aarch64-uefi"


# The variables each firmware starts from, copied afresh for every start of a VM
_EFI_VARS = {Firmware.UEFI_SECUREBOOT: (OVMF_MS_VARS, "ovmf"),
             Firmware.AARCH64_UEFI: (AAVMF_VARS, "qemu-efi-aarch64")}


class Accel(StrEnum):
    KVM = "kvm"
    TCG = "tcg"  # software emulation: slow but runs everything, including the iPXE ROM


@dataclass(frozen=True)
class VmSpec:
    """One VM. With ``kernel`` set it boots that kernel directly (no firmware PXE at all)."""

    name: str
    mac: str
    tap: str | None  # None: no network card
    firmware: Firmware = Firmware.BIOS
    accel: Accel = Accel.TCG
    memory_mb: int = 512
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    nic: str = "virtio-net-pci"  # QEMU's model of the one network card
    extra: tuple[str, ...] = ()  # more QEMU arguments (disks, a hub NIC for a probe)
    # uefi-secureboot, aarch64-uefi: this VM's own copy of the variables (Vm.start makes a
    # fresh one)
    efi_vars: Path | None = None


def qemu_argv(spec: VmSpec) -> list[str]:
    """The QEMU command line for ``spec``; the serial console is stdio, the monitor is off."""
    if spec.firmware is Firmware.AARCH64_UEFI:
        return _aarch64_argv(spec)
    nic = spec.nic
    if spec.firmware in (Firmware.UEFI, Firmware.UEFI_HTTP, Firmware.UEFI_IPV6):
        machine = ["-machine", f"q35,accel={spec.accel}", "-bios", str(OVMF)]
        if spec.firmware is Firmware.UEFI_HTTP:
            machine += UEFI_HTTP_BOOT_ONLY
        elif spec.firmware is Firmware.UEFI_IPV6:
            machine += UEFI_PXE_IPV6_ONLY
    elif spec.firmware is Firmware.UEFI_SECUREBOOT:
        if spec.efi_vars is None:
            raise LabError(f"VM {spec.name}: Secure Boot firmware needs its own variables file")
        # SMM keeps the variables (so the enrolled keys) out of the OS's reach; OVMF's
        # secboot build refuses to start without it
        machine = ["-machine", f"q35,smm=on,accel={spec.accel}",
                   "-global", "driver=cfi.pflash01,property=secure,value=on",
                   "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SECBOOT_CODE}",
                   "-drive", f"if=pflash,format=raw,unit=1,file={spec.efi_vars}"]
        nic += ",romfile="
    else:
        machine = ["-machine", f"pc,accel={spec.accel}"]
    cpu = "host" if spec.accel is Accel.KVM else "qemu64"
    argv = [QEMU, "-name", spec.name, *machine, "-cpu", cpu, "-m", str(spec.memory_mb),
            "-smp", "1", "-nographic", "-monitor", "none", "-no-reboot"]
    argv += _nic(spec, nic)
    if spec.kernel is not None:
        argv += ["-kernel", str(spec.kernel)]
        if spec.initrd is not None:
            argv += ["-initrd", str(spec.initrd)]
        if spec.append:
            argv += ["-append", spec.append]
    else:
        argv += ["-boot", "n"]
    return argv + list(spec.extra)


def _nic(spec: VmSpec, nic: str) -> list[str]:
    if spec.tap is None:
        return ["-nic", "none"]  # not QEMU's default user-mode NIC: nothing leaves the VM
    return ["-netdev", f"tap,ifname={spec.tap},script=no,downscript=no,id=n0",
            "-device", f"{nic},netdev=n0,mac={spec.mac}"]


def _aarch64_argv(spec: VmSpec) -> list[str]:
    """An ARM64 VM: QEMU's virt machine under TCG (no KVM for another architecture), AAVMF
    in its two flash devices, the NIC without an option ROM so AAVMF's own PXE runs."""
    if spec.efi_vars is None:
        raise LabError(f"VM {spec.name}: AAVMF needs its own variables file")
    argv = [QEMU_AARCH64, "-name", spec.name, "-machine", "virt,accel=tcg", "-cpu", AARCH64_CPU,
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={spec.efi_vars}",
            "-m", str(spec.memory_mb), "-smp", "1", "-nographic", "-monitor", "none",
            "-no-reboot"]
    return argv + _nic(spec, f"{spec.nic},romfile=") + list(spec.extra)


def qemu_binary(spec: VmSpec) -> str:
    return QEMU_AARCH64 if spec.firmware is Firmware.AARCH64_UEFI else QEMU


_PATHS = ("kernel", "initrd", "efi_vars")  # a VmSpec's fields that are paths


def spec_json(spec: VmSpec) -> dict[str, object]:
    """``spec`` as JSON, for a process that starts the VM later (a lab BMC's power-on)."""
    data = asdict(spec)
    for key in _PATHS:
        data[key] = None if data[key] is None else str(data[key])
    data["extra"] = list(spec.extra)
    return data


def spec_from_json(data: dict[str, Any]) -> VmSpec:
    return VmSpec(**{**data, "firmware": Firmware(data["firmware"]), "accel": Accel(data["accel"]),
                     **{key: None if data.get(key) is None else Path(data[key])
                        for key in _PATHS}, "extra": tuple(data["extra"])})


def start_detached(spec: VmSpec, console: Path, qemu_log: Path) -> int:
    """Start the VM of ``spec`` in a session of its own, to outlive its starter, its serial
    console appended to ``console`` as it comes (raw) and QEMU's messages to ``qemu_log``;
    its pid. The caller's network namespace is the VM's; no descriptor is inherited but
    these (a lab BMC's starter holds ipmi_sim's sockets)."""
    if shutil.which(qemu_binary(spec)) is None:
        raise LabError(not_installed(qemu_binary(spec)))
    fresh_efi_vars(spec)
    console.parent.mkdir(parents=True, exist_ok=True)
    with console.open("ab") as out, qemu_log.open("ab") as err:
        proc = subprocess.Popen(qemu_argv(spec), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True, close_fds=True)
    _await_argv(proc)
    return proc.pid


def _await_argv(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Wait until the kernel shows the started QEMU's command line: Popen returns as soon as
    exec has replaced the child's memory, before the new argv is in place (an empty
    /proc/PID/cmdline for a moment, longer when the binary is not yet in the page cache), and
    whoever then checks the pid by its argv (a BMC's power status) would find no VM."""
    deadline = time.monotonic() + timeout
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while time.monotonic() < deadline and proc.poll() is None:
        with suppress(OSError):
            if cmdline.read_bytes():
                return
        time.sleep(0.005)


def fresh_efi_vars(spec: VmSpec) -> None:
    """Give a VM whose firmware keeps variables in flash (Secure Boot: Microsoft's enrolled
    keys; AAVMF) its variables afresh (at every start: the firmware writes its boot entries
    there)."""
    if spec.firmware not in _EFI_VARS:
        return
    source, package = _EFI_VARS[spec.firmware]
    if spec.efi_vars is None:
        raise LabError(f"VM {spec.name}: {spec.firmware} firmware needs its own variables file")
    if not source.is_file():
        raise LabError(f"{source} is missing: apt-get install {package}")
    shutil.copyfile(source, spec.efi_vars)


@dataclass(frozen=True)
class SerialLine:
    """One console line and when it was complete, in seconds since QEMU started."""

    at: float
    text: str


def clean_line(raw: bytes) -> str:
    """A console line as text: escape sequences and control characters gone, backspaces applied.

    iPXE's "Press Ctrl-B" countdown erases itself with backspaces and the next
    message follows on the same line; applying them leaves just that message.
    """
    kept: list[str] = []
    for char in _ESCAPES.sub(b"", raw).decode("utf-8", "replace"):
        if char == "\b":
            if kept:
                kept.pop()
        else:
            kept.append(char)
    return _CONTROLS.sub("", "".join(kept)).strip()


class VmTimeout(LabError):
    """A VM did not show what was waited for in time; the message ends with its last lines."""


class Vm:
    """A running QEMU: ``with Vm(spec, log_dir, netns) as vm: vm.wait_for(...)``.

    The serial log is ``<log_dir>/<name>.serial.log`` (lines stamped
    ``[  12.345]``), QEMU's own messages go to ``<name>.qemu.log``.
    """

    def __init__(self, spec: VmSpec, log_dir: Path, netns: str | None = None) -> None:
        if spec.firmware in _EFI_VARS and spec.efi_vars is None:
            spec = replace(spec, efi_vars=log_dir / f"{spec.name}.vars.fd")
        self.spec = spec
        self.netns = netns
        self.serial_log = log_dir / f"{spec.name}.serial.log"
        self.qemu_log = log_dir / f"{spec.name}.qemu.log"
        self.started = 0.0  # time.monotonic() at start: serial times count from here
        self.started_wall = 0.0  # the same moment as Unix time, to place server-side stages
        self.tail: deque[str] = deque(maxlen=30)
        self._lines: queue.Queue[SerialLine | None] = queue.Queue()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> Vm:
        if shutil.which(qemu_binary(self.spec)) is None:
            raise LabError(not_installed(qemu_binary(self.spec)))
        argv = qemu_argv(self.spec)
        if self.netns is not None:
            argv = iproute.in_netns(self.netns, argv)
        self.serial_log.parent.mkdir(parents=True, exist_ok=True)
        fresh_efi_vars(self.spec)
        with self.qemu_log.open("wb") as err:
            self.started, self.started_wall = time.monotonic(), time.time()
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=err)
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,),
                                        name=f"serial-{self.spec.name}", daemon=True)
        self._reader.start()
        return self

    def _read(self, stream: IO[bytes]) -> None:
        """Split the console into lines, stamp, log and queue them; None marks its end."""
        with self.serial_log.open("w") as log:
            for raw in iter(stream.readline, b""):
                # Carriage-return rewrites (spinners, "...ok") end up on one line.
                text = clean_line(raw.replace(b"\r", b""))
                if not text:
                    continue
                line = SerialLine(time.monotonic() - self.started, text)
                log.write(f"[{line.at:8.3f}] {text}\n")
                log.flush()
                self.tail.append(text)
                self._lines.put(line)
        self._lines.put(None)

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def lines(self, timeout: float, awaited: str = "QEMU's exit") -> Iterator[SerialLine]:
        """Console lines as they come, until QEMU exits; VmTimeout after ``timeout`` s in all."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0))
            except queue.Empty:
                raise self._timeout(f"no {awaited} within {timeout:.0f} s") from None
            if line is None:
                self._lines.put(None)  # later callers see the end too
                return
            yield line

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float) -> SerialLine:
        """The first console line matching ``pattern`` (searched, not anchored)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines(timeout, f"console line matching {regex.pattern!r}"):
            if regex.search(line.text):
                return line
        self.wait_exit(STOP_GRACE)  # the console closes a moment before QEMU's status is there
        raise self._timeout(f"QEMU exited (status {self.returncode}) before {regex.pattern!r}")

    def wait_exit(self, timeout: float) -> int:
        """QEMU's exit status once it exits by itself (poweroff with -no-reboot)."""
        assert self._proc is not None, "start() first"
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._timeout(f"still running after {timeout:.0f} s") from None

    def _timeout(self, what: str) -> VmTimeout:
        errors = self.qemu_log.read_text(errors="replace").strip() if self.qemu_log.exists() else ""
        return VmTimeout(
            f"VM {self.spec.name} ({self.spec.mac}): {what}; serial log {self.serial_log}"
            + (f"; QEMU said: {errors}" if errors else "")
            + ("; last console lines:\n  " + "\n  ".join(self.tail) if self.tail else
               "; nothing on its console")
        )

    def stop(self) -> None:
        """Stop QEMU: SIGTERM (it exits at once), SIGKILL if it does not within the grace."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._reader is not None:
            self._reader.join(STOP_GRACE)

    def __enter__(self) -> Vm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class VmFactory:
    """Starts VMs (inside a lab namespace), and stops every one of them at the end."""

    log_dir: Path
    vms: list[Vm] = field(default_factory=list)

    def start(self, spec: VmSpec, netns: str | None = None) -> Vm:
        vm = Vm(spec, self.log_dir, netns)
        self.vms.append(vm)
        return vm.start()

    def stop_all(self) -> None:
        for vm in self.vms:
            vm.stop()


def lab_mac(index: int) -> str:
    """The MAC of the lab's VM number ``index``: QEMU's locally administered 52:54:00 block."""
    if not 0 <= index < 1 << 24:
        raise LabError(f"VM index {index} out of range")
    return "52:54:00:" + ":".join(f"{(index >> s) & 0xFF:02x}" for s in (16, 8, 0))


PROBE_TIMEOUT = 5.0  # a working ROM gets there in well under a second, even under TCG
# The iPXE ROM prints this once it runs; under the nested KVM here it hangs just before.
PROBE_MARKER = "iPXE initialising devices"


def rom_runs(accel: Accel, log_dir: Path, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if a BIOS VM under ``accel`` gets its NIC's iPXE ROM running within ``timeout`` s.

    The probe VM's NIC sits alone on a QEMU hub, so nothing it sends leaves the VM.
    """
    spec = VmSpec(name=f"probe-{accel}", mac=lab_mac(0xFFFFFF), tap=None, accel=accel,
                  memory_mb=128, extra=("-netdev", "hubport,hubid=0,id=n0",
                                        "-device", f"virtio-net-pci,netdev=n0,mac={lab_mac(0)}"))
    with Vm(spec, log_dir) as vm:
        try:
            vm.wait_for(re.escape(PROBE_MARKER), timeout)
        except VmTimeout:
            return False
    return True


def kvm_works(log_dir: Path) -> bool:
    """True only if KVM really runs the iPXE ROM.

    /dev/kvm existing proves little: a nested, paravirtual KVM opens fine and
    then never gets past the ROM's "starting execution".
    """
    kvm = Path("/dev/kvm")
    return kvm.exists() and os.access(kvm, os.R_OK | os.W_OK) and rom_runs(Accel.KVM, log_dir)


def choose_accel(log_dir: Path) -> Accel:
    """KVM where the probe boot works, TCG otherwise."""
    return Accel.KVM if kvm_works(log_dir) else Accel.TCG
