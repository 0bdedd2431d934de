"""Each client's boot loader files, rendered from Jinja2 templates in netboot/templates/.

Rendered per request, in memory, so a change to a client or to the config is
in the next boot without a rebuild step. The iPXE script fetches everything
over HTTP; the PXELINUX config names TFTP paths relative to pxelinux.0; the
GRUB config names TFTP paths from the root (GRUB's ``$root`` is the TFTP
server the firmware booted from).
"""

from __future__ import annotations

from netboot.arch import FACTS, Arch
from netboot.boot import urls
from netboot.boot.sanboot import render_sanboot_script
from netboot.config import Config
from netboot.inventory.clients import BootMethod, Client
from netboot.templates import render

RETRY_SECONDS = 30  # how long a failed or unregistered machine waits before it asks again


def kernel_args(config: Config, arch: Arch = Arch.AMD64) -> str:
    """The kernel arguments every loader passes after its own (initrd names, the boot NIC):
    the console of ``arch``'s machines, ``boot.kernel_args`` and ``netboot.onfail``."""
    extra = f" {config.boot.kernel_args}" if config.boot.kernel_args else ""
    return f"console={FACTS[arch].console}{extra} netboot.onfail={config.boot.onfail.value}"


def ipxe_script(config: Config, client: Client, part_token: str | None = None) -> str:
    """``clients/<mac>/[<token>/]boot.ipxe``, by the client's boot method: the one place that
    decides.

    initramfs: kernel, the base and the client's initrd (named with ``part_token``
    when files go by token), arguments; sanboot: iPXE logs in to the client's LUN
    itself (see netboot.boot.sanboot). On failure it tries again: with tokens by a
    new DHCP exchange (a new boot, whose reply names the script with a new token),
    else from the script's own URL.
    """
    if client.boot_method is BootMethod.SANBOOT:
        return render_sanboot_script(config, client)
    return render("boot.ipxe.j2", client=client, base_url=urls.base_url(config),
                  kernel_url=urls.url(config, urls.KERNEL),
                  initramfs_url=urls.url(config, urls.INITRAMFS),
                  client_part_url=urls.client_part_url(config, client.mac, part_token),
                  script_url=None if part_token else urls.script_url(config, client.mac),
                  kernel_args=kernel_args(config), retry_seconds=RETRY_SECONDS)


def pxelinux_config(config: Config, client: Client, part_token: str | None = None) -> str:
    """``pxelinux.cfg/01-<mac>``: the same boot for PXELINUX, BOOTIF from IPAPPEND 2."""
    return render("pxelinux.cfg.j2", client=client, kernel=urls.KERNEL_SHORT,
                  initramfs=urls.INITRAMFS_SHORT,
                  client_part=urls.pxelinux_client_part(client.mac, part_token),
                  kernel_args=kernel_args(config))


def grub_config() -> str:
    """``grub/grub.cfg``, the one file Debian's signed network GRUB reads by itself: the same
    for every machine, it goes on to the machine's own (:func:`grub_client_config`)."""
    return render("grub.cfg.j2", client_config="/" + urls.grub_client_config(
        "${net_default_mac}", "${grub_cpu}"), retry_seconds=RETRY_SECONDS)


def grub_client_config(config: Config, client: Client, part_token: str | None = None,
                       arch: Arch = Arch.AMD64) -> str:
    """``grub/clients/<cpu>/<mac>.cfg``: the same boot for GRUB, with ``arch``'s kernel,
    base initramfs and console (the client part is the same everywhere). Under Secure
    Boot GRUB has shim check the kernel's signature; the initrds are data, loaded as one
    (each padded to 4 bytes). The boot NIC is named by ``netboot.mac`` as for iPXE."""
    return render("grub-client.cfg.j2", client=client, kernel="/" + urls.kernel(arch),
                  initramfs="/" + urls.initramfs(arch),
                  client_part="/" + urls.client_file(client.mac, urls.CLIENT_PART, part_token),
                  kernel_args=kernel_args(config, arch), retry_seconds=RETRY_SECONDS)


def unregistered_ipxe(config: Config, mac: str) -> str:
    """For a machine that is not registered: say so, then try again or power off."""
    return render("unregistered.ipxe.j2", mac=mac, script_url=urls.script_url(config, mac),
                  retry_seconds=RETRY_SECONDS)


def unregistered_pxelinux(mac: str) -> str:
    return render("unregistered.pxelinux.j2", mac=mac, retry_seconds=RETRY_SECONDS)


def unregistered_grub(mac: str) -> str:
    return render("unregistered.grub.j2", mac=mac, retry_seconds=RETRY_SECONDS)
