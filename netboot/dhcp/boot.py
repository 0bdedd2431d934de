"""Which boot file a client is told to load: a pure function of its request and the config.

The chain is firmware -> boot loader (TFTP, or HTTP for UEFI HTTP boot) ->
iPXE -> the client's iPXE script over HTTP. A request from iPXE itself gets
the script URL, never a loader again, so the chain cannot loop. The loaders
that end the chain themselves (they read the firmware's cached DHCP reply and
never ask again) are the exception: under ``boot.loader: pxelinux`` BIOS
clients, under ``grub-secureboot`` UEFI x86-64 clients get that loader even
from iPXE. ARM64 UEFI clients always get Debian's network GRUB for arm64 (Debian
has no iPXE for it), which reads its config from the TFTP server.

The tables name only loaders ``make setup`` puts in the TFTP root
(:data:`netboot.boot.loaders.BOOT_FILES`); an architecture that has none gets no
offer, and the decision's log line says which and why (:func:`no_loader`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from netboot.boot import loaders, urls
from netboot.config import Config, Loader
from netboot.dhcp.options import (
    FILE_SIZE,
    HTTP_VENDOR_CLASS,
    PXE_VENDOR_CLASS,
    ClientArch,
    Option,
    PxeDiscoveryControl,
    PxeOption,
)
from netboot.dhcp.packet import Modifier, Request

# TFTP names of the boot loaders (the contract with the TFTP side), per option 93.
# boot.loader grub-secureboot is for UEFI x86-64 only: BIOS machines keep iPXE.
BIOS_LOADERS = {Loader.IPXE: loaders.UNDIONLY, Loader.PXELINUX: loaders.PXELINUX,
                Loader.GRUB_SECUREBOOT: loaders.UNDIONLY}
UEFI_LOADERS = {
    ClientArch.EFI_BC: loaders.IPXE_EFI,
    ClientArch.EFI_X86_64: loaders.IPXE_EFI,
    ClientArch.EFI_ARM64: loaders.GRUB_ARM64,
}
# Under boot.loader grub-secureboot: Debian's signed shim, which loads the signed GRUB beside
# it; ARM64 keeps its entry in UEFI_LOADERS.
SECUREBOOT_LOADERS = {
    ClientArch.EFI_BC: loaders.SHIM_X64,
    ClientArch.EFI_X86_64: loaders.SHIM_X64,
}
# UEFI HTTP boot (UEFI 2.5 section 24.7) fetches the same loaders over HTTP.
# ARM64 HTTP boot has none: GRUB loaded over HTTP would look for its config there, which
# netboot does not serve it (see no_loader).
HTTP_LOADERS = {
    ClientArch.EFI_X86_64_HTTP: loaders.IPXE_EFI,
}
# What an architecture without a loader would need, for the log line that says so
_NO_LOADER_HINT = {
    ClientArch.EFI_ARM64_HTTP: "netboot boots ARM64 by PXE only (GRUB for arm64 over TFTP); "
                               "let the firmware try PXE",
}
# Option 43 for firmware PXE ROMs: "boot the file in this offer, no boot server discovery"
# (PXE 2.1 section 2.4). Without it some Intel and Broadcom ROMs wait for a boot server.
PXE_DISCOVERY = bytes((PxeOption.DISCOVERY_CONTROL, 1, PxeDiscoveryControl.USE_BOOT_FILE,
                       Option.END))


@dataclass(frozen=True, slots=True)
class BootChoice:
    """What goes in ``file``/option 67, and how the reply must be dressed for this client."""

    file: str
    arch: int | None  # the option 93 type the choice was made for (None: not sent)
    vendor_class: bytes | None = None  # option 60 to send back (PXE and HTTP boot need it)
    ipxe: bool = False  # the client is iPXE: it gets option 175 in full mode
    pxe_rom: bool = False  # a firmware PXE ROM: it gets option 43 discovery control


def opens_window(request: Request) -> bool:
    """Whether ``request`` is a boot's own DHCP exchange: a PXE ROM's, UEFI HTTP boot's or
    iPXE's, which may open a boot window (:mod:`netboot.inventory.windows`). A booted
    system's DHCP client has none of these identities, and an unprivileged process cannot
    send from port 68 (the decision's caller only sees such requests)."""
    vendor = request.vendor_class
    return (request.is_ipxe or vendor.startswith(PXE_VENDOR_CLASS)
            or vendor.startswith(HTTP_VENDOR_CLASS))


def choose_boot(request: Request, config: Config, token: str | None = None) -> BootChoice | None:
    """The boot file for ``request``, or None for an architecture netboot has no loader for.

    ``token``: the script token of the client's boot window, put in the script's URL."""
    arches = request.architectures
    arch = arches[0] if arches else None
    vendor = request.vendor_class
    bios = arch is None or arch == ClientArch.BIOS
    secureboot = config.boot.loader is Loader.GRUB_SECUREBOOT
    if request.is_ipxe:
        echo = PXE_VENDOR_CLASS if vendor.startswith(PXE_VENDOR_CLASS) else None
        if bios and config.boot.loader is Loader.PXELINUX:
            # A NIC whose ROM is iPXE (QEMU's, many cloud NICs) runs pxelinux.0 as any PXE
            # ROM would; pxelinux reads the ROM's cached DHCP reply, so the chain ends there.
            return BootChoice(BIOS_LOADERS[Loader.PXELINUX], arch, echo, ipxe=True)
        if secureboot and arch in SECUREBOOT_LOADERS:
            # Under Secure Boot iPXE could not start Debian's kernel (signed by Debian, not
            # in the firmware's db): shim can. GRUB reads the cached reply: no loop.
            return BootChoice(SECUREBOOT_LOADERS[ClientArch(arch)], arch, echo, ipxe=True)
        return BootChoice(urls.script_url(config, request.mac, token), arch, echo, ipxe=True)
    if vendor.startswith(HTTP_VENDOR_CLASS):
        for candidate in arches:
            if candidate in HTTP_LOADERS:
                loader = urls.url(config, HTTP_LOADERS[ClientArch(candidate)])
                return BootChoice(loader, candidate, HTTP_VENDOR_CLASS)
        return None
    pxe = vendor.startswith(PXE_VENDOR_CLASS)
    echo = PXE_VENDOR_CLASS if pxe else None
    if bios:
        return BootChoice(BIOS_LOADERS[config.boot.loader], arch, echo, pxe_rom=pxe)
    table = {**UEFI_LOADERS, **SECUREBOOT_LOADERS} if secureboot else UEFI_LOADERS
    for candidate in arches:
        if candidate in table:
            return BootChoice(table[ClientArch(candidate)], candidate, echo, pxe_rom=pxe)
    return None


def no_loader(request: Request) -> str:
    """Why ``request`` gets no boot file: the architectures it named and what would do."""
    names = ", ".join(f"{ClientArch(a).name} ({a})" if a in ClientArch._value2member_map_
                      else str(a) for a in request.architectures) or "none given"
    hint = next((_NO_LOADER_HINT[ClientArch(a)] for a in request.architectures
                 if a in _NO_LOADER_HINT), None)
    return (f"no boot loader for architecture {names}: "
            + (hint or "Debian packages none netboot can serve for it (netboot serves x86 "
               "BIOS and UEFI, and ARM64 UEFI with grub-efi-arm64-signed)"))


def with_boot(boot: BootChoice, server: IPv4Address) -> Modifier:
    """next-server, ``file``, options 66/67 and the vendor options ``boot`` asks for."""
    name = boot.file.encode()
    options = {Option.TFTP_SERVER_NAME: str(server).encode(), Option.BOOTFILE_NAME: name}
    if boot.vendor_class is not None:
        options[Option.VENDOR_CLASS] = boot.vendor_class
    if boot.pxe_rom:
        options[Option.VENDOR_SPECIFIC] = PXE_DISCOVERY
    file = name if len(name) < FILE_SIZE else b""  # else only in option 67
    return lambda reply: replace(reply, siaddr=server, file=file,
                                 options={**reply.options, **options})
