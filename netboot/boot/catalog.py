"""What a boot file name means, and who may have it: one namespace for TFTP and HTTP.

Names (TFTP names them bare, HTTP with a leading ``/``):

- ``vmlinuz``, ``initramfs.img`` (also ``boot/vmlinuz``, ``boot/initramfs.img``):
  config.kernel_path and config.initramfs_path; ``boot/arm64/vmlinuz`` and
  ``boot/arm64/initramfs.img``: ARM64's (config.kernel_file(arch), initramfs_file(arch));
- a client's private files, rendered in memory for that client (the script and
  the initrd part carry its CHAP secrets): ``clients/<mac>/<token>/boot.ipxe``,
  ``clients/<mac>/<token>/client.img``, ``pxelinux.cfg/01-<mac-with-dashes>`` and
  ``grub/clients/<cpu>/<mac>.cfg`` (GRUB's ``$grub_cpu``: the architecture it boots).
  With ``boot.tokens`` (the default) each is given once, to the boot whose DHCP
  exchange opened a window for the MAC (see :mod:`netboot.inventory.windows`):
  the token in the name is spent, and PXELINUX's and GRUB's configs, which have
  fixed names, spend their tokens by name. Without tokens (``dhcp.mode: off``) the names
  have no token and go to the address the client holds;
- for a MAC that is not registered, under ``dhcp.unknown: boot``,
  ``clients/<mac>/boot.ipxe`` and the PXELINUX and GRUB names give the "not
  registered" script or config instead (nothing secret in them);
- ``grub/grub.cfg``: the config GRUB reads by itself (ARM64 clients always boot GRUB,
  x86-64 ones under ``boot.loader: grub-secureboot``), the same for everyone, which
  names the per-client one;
- anything else: a regular file under the TFTP root (server.tftp_root), never outside it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from netboot.arch import Arch, by_grub_cpu
from netboot.boot import loaders, scripts, urls
from netboot.boot.clientpart import build_client_part
from netboot.boot.content import BytesSource, FileSource
from netboot.config import Config, Loader, UnknownPolicy
from netboot.errors import NetbootError, NotFound, ValidationError
from netboot.inventory.clients import Client
from netboot.inventory.pool import InventoryPool
from netboot.inventory.stages import Stage
from netboot.inventory.store import Inventory
from netboot.inventory.windows import BootFile, Spend, Verdict
from netboot.log import client_log
from netboot.names import normalize_mac

log = logging.getLogger(__name__)

KERNEL_NAMES = {urls.KERNEL_SHORT: Arch.AMD64} | {urls.kernel(a): a for a in Arch}
INITRAMFS_NAMES = {urls.INITRAMFS_SHORT: Arch.AMD64} | {urls.initramfs(a): a for a in Arch}
ADDRESS_BOOK_TTL = 2.0  # seconds before the address -> client map checks the directory version
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Seconds a request waits for its window to be prepared (normally ~10 ms) unless its server
# waits less and asks its client to come back (HTTP: netboot.http.server.NOT_READY_WAIT)
READY_WAIT = 10.0
# How often a waiting request asks again: soon at first (a window is normally ready within
# ~10 ms), then less and less often up to READY_POLL_MAX, so a storm's hundreds of waiting
# requests do not read the inventory fifty times a second each.
READY_POLL = 0.02
READY_POLL_MAX = 0.25
# The private files by the name a client asks for
_FILES = {urls.SCRIPT: BootFile.SCRIPT, urls.CLIENT_PART: BootFile.CLIENT_PART,
          urls.PXELINUX_DIR: BootFile.PXELINUX, urls.GRUB_DIR: BootFile.GRUB}
# The loader config each fixed-name private file is for (spent by name, under that loader only;
# GRUB's for ARM64 under any: GRUB is its only loader)
_LOADER_CONFIGS = {urls.PXELINUX_DIR: Loader.PXELINUX, urls.GRUB_DIR: Loader.GRUB_SECUREBOOT}


def next_poll(pause: float) -> float:
    """The pause before a waiting request's next look at its window, after ``pause``."""
    return min(pause * 1.5, READY_POLL_MAX)


class AccessDenied(NetbootError):
    """The name is not one this peer may read; the message says why (for the log)."""


class NotReady(AccessDenied):
    """The boot window is still being prepared after the wait the caller allowed: a server
    whose clients can ask again later (HTTP's 503 with Retry-After) tells them so."""

    def __init__(self, message: str, mac: str) -> None:
        super().__init__(message)
        self.mac = mac


@dataclass
class Content:
    """An opened boot file: its bytes, whose it is and which boot stage fetching it marks."""

    name: str
    source: BytesSource | FileSource
    mac: str | None = None  # the client it belongs to, or the registered client asking
    stage: Stage | None = None

    @property
    def size(self) -> int:
        return self.source.size

    def close(self) -> None:
        if isinstance(self.source, FileSource):
            os.close(self.source.fd)


def holds_address(config: Config, client: Client, peer: IPv4Address | IPv6Address) -> bool:
    """Whether ``peer`` is an address ``client`` holds: the one rule for private files.

    That is its inventory address, or on an IPv6 boot VLAN the fixed IPv6 address it
    maps to (netboot.config.Dhcp6Config): netboot's DHCP and DHCPv6 give a registered
    client those addresses and keep leases (netboot.dhcp.leases) only for unregistered
    machines, which have no private files. Any other source of addresses joins here.
    """
    return peer == client.ip or (peer.version == 6 and peer == config.ipv6_of(client.ip))


def check_name(name: str) -> list[str]:
    """The path components of a requested name, or AccessDenied for every traversal form.

    Refused outright, whatever the root holds: NUL and control characters,
    backslashes (a Windows separator), absolute paths and ``..`` components.
    Names are never URL-decoded here (HTTP decodes once, before): ``%2e%2e``
    is a file name with percent signs in it.
    """
    if "\0" in name:
        raise AccessDenied("NUL byte in name")
    if _CONTROL.search(name):
        raise AccessDenied("control character in name")
    if "\\" in name:
        raise AccessDenied("backslash in name")
    if name.startswith("/"):
        raise AccessDenied("absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise AccessDenied("'..' in path")
    parts = [p for p in parts if p not in ("", ".")]
    if not parts:
        raise NotFound("empty file name")
    return parts


def open_beneath(root: Path, parts: list[str]) -> FileSource:
    """Open a regular file under ``root``; symlinks may be followed only if they stay inside.

    The check is made on the opened descriptor (/proc/self/fd), so a link
    swapped in between the check and the open cannot lead outside.
    """
    path = root.joinpath(*parts)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no file {'/'.join(parts)} in {root}") from None
    except PermissionError:
        raise AccessDenied(f"{path} is not readable by the server") from None
    except OSError as err:
        raise NotFound(f"cannot open {path}: {err.strerror}") from None
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        top = os.path.realpath(root)
        if os.path.commonpath([real, top]) != top:
            raise AccessDenied(f"{'/'.join(parts)} leads outside {root} (to {real})")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotFound(f"{'/'.join(parts)} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return FileSource(fd, info.st_size)


def open_file(path: Path) -> FileSource:
    """Open a configured file (kernel, initramfs) that may live anywhere."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise NotFound(f"cannot open {path}: {err.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotFound(f"{path} is not a regular file")
    return FileSource(fd, info.st_size)


class Catalog:
    """Turns (name, peer address) into :class:`Content`, or NotFound / AccessDenied."""

    def __init__(self, config: Config, inventories: InventoryPool) -> None:
        self.config = config
        self.inventories = inventories
        self._book: dict[IPv4Address | IPv6Address, str] = {}
        self._book_at = -ADDRESS_BOOK_TTL
        self._book_version: int | None = None
        self._book_lock = threading.Lock()

    def open(self, name: str, peer: IPv4Address | IPv6Address, *,
             spend: bool = True, wait: float = READY_WAIT) -> Content:
        """The file ``name`` for ``peer``; ``spend=False`` (an HTTP HEAD) leaves a token unspent;
        a private file waits up to ``wait`` seconds for its window (then NotReady)."""
        parts = check_name(name)
        name = "/".join(parts)
        if name in KERNEL_NAMES:
            return Content(name, open_file(self.config.kernel_file(KERNEL_NAMES[name])),
                           self.client_at(peer), Stage.KERNEL)
        if name in INITRAMFS_NAMES:
            return Content(name, open_file(self.config.initramfs_file(INITRAMFS_NAMES[name])),
                           self.client_at(peer))
        if name == urls.GRUB_CONFIG:
            return Content(name, BytesSource(scripts.grub_config().encode()),
                           self.client_at(peer))
        private = self._private(parts, peer, spend, wait)
        if private is not None:
            return private
        return Content(name, open_beneath(self.config.tftp_root_path, parts),
                       self.client_at(peer), Stage.LOADER if name in loaders.FIRST_STAGE else None)

    def client_at(self, peer: IPv4Address | IPv6Address) -> str | None:
        """The MAC of the registered client at ``peer``, to name it in logs and stages.

        The address book is read again only when the inventory's directory version moved
        (a client added or removed, or its address changed), checked every
        :data:`ADDRESS_BOOK_TTL` seconds: a boot storm costs no read of every client.
        Never used to grant access (see :func:`holds_address`).
        """
        with self._book_lock:
            now = time.monotonic()
            if now - self._book_at >= ADDRESS_BOOK_TTL:
                self._book_at = now
                with self.inventories.borrow() as inventory:
                    version = inventory.directory_version()
                    if version != self._book_version:
                        self._book = self._address_book(inventory.client_addresses())
                        self._book_version = version
            return self._book.get(peer)

    def _address_book(self, addresses: dict[IPv4Address, str]
                      ) -> dict[IPv4Address | IPv6Address, str]:
        """Each client's addresses (its IPv6 one too where DHCPv6 is on) to its MAC."""
        book: dict[IPv4Address | IPv6Address, str] = dict(addresses)
        if self.config.dhcp6.enabled:
            book.update({self.config.ipv6_of(ip): mac for ip, mac in addresses.items()})
        return book

    def owner(self, inventory: Inventory, mac_text: str,
              peer: IPv4Address | IPv6Address) -> Client | None:
        """The client named by ``mac_text`` if ``peer`` may have its files; None if unknown."""
        try:
            mac = normalize_mac(mac_text)
        except ValidationError:
            raise NotFound(f"{mac_text!r} is not a MAC address") from None
        client = inventory.find(mac)
        if client is not None and not holds_address(self.config, client, peer):
            client_log(log, mac).warning("refused %s's private file to %s (it holds %s)",
                                         mac, peer, client.ip)
            raise AccessDenied(f"{peer} is not the address of client {mac}")
        return client

    def close_window(self, mac: str) -> None:
        """The client reported ``root``: its boot's tokens are dead from now on."""
        if self.config.tokens:
            with self.inventories.borrow() as inventory:
                inventory.close_window(mac, time.time())

    def _private(self, parts: list[str], peer: IPv4Address | IPv6Address,
                 spend: bool, wait: float) -> Content | None:
        """A per-client name rendered for its owner, or None if ``parts`` is not one."""
        name = "/".join(parts)
        token = None
        arch = Arch.AMD64
        if (len(parts) in (3, 4) and parts[0] == urls.CLIENTS
                and parts[-1] in (urls.SCRIPT, urls.CLIENT_PART)):
            mac_text, kind = parts[1], parts[-1]
            token = parts[2] if len(parts) == 4 else None
        elif (len(parts) == 2 and parts[0] == urls.PXELINUX_DIR
              and parts[1].startswith(urls.PXELINUX_PREFIX) and len(parts[1]) == 20):
            mac_text, kind = parts[1][len(urls.PXELINUX_PREFIX):], urls.PXELINUX_DIR
        elif (len(parts) == 4 and parts[:2] == [urls.GRUB_DIR, urls.GRUB_CLIENTS]
              and parts[3].endswith(urls.GRUB_SUFFIX)):
            mac_text, kind = parts[3][:-len(urls.GRUB_SUFFIX)], urls.GRUB_DIR
            found = by_grub_cpu(parts[2])
            if found is None:
                raise NotFound(f"{name}: netboot boots no {parts[2]!r} machines")
            arch = found
        else:
            return None
        shown = urls.redact(name)
        if not self.config.tokens:
            if token is not None:
                raise NotFound(f"{shown}: boot tokens are off (boot.tokens)")
            with self.inventories.borrow() as inventory:
                client = self.owner(inventory, mac_text, peer)
            if client is None:
                return self._unregistered(name, normalize_mac(mac_text), kind)
            return self._render(shown, client, kind, None, arch)
        try:
            mac = normalize_mac(mac_text)
        except ValidationError:
            raise NotFound(f"{mac_text!r} is not a MAC address") from None
        with self.inventories.borrow() as inventory:
            client = inventory.find(mac)
        if client is None:
            if token is not None:
                raise NotFound(f"{mac} is not a registered client")
            return self._unregistered(name, mac, kind)
        if (kind in _LOADER_CONFIGS and self.config.boot.loader is not _LOADER_CONFIGS[kind]
                and arch is Arch.AMD64):
            raise AccessDenied(f"{shown}: no boot asks for it "
                               f"(boot.loader is {self.config.boot.loader})")
        if token is None and kind not in _LOADER_CONFIGS:
            raise AccessDenied(f"{shown} has no boot token: it is given only to a boot "
                               "that netboot's DHCP opened a window for")
        window = self._spend(mac, _FILES[kind], token, peer, spend, wait).window
        assert window is not None
        return self._render(shown, client, kind, window.tokens[BootFile.CLIENT_PART], arch)

    def _spend(self, mac: str, file: BootFile, token: str | None, peer: IPv4Address | IPv6Address,
               spend: bool, wait: float) -> Spend:
        """Spend ``token`` (None: the window's own for ``file``), waiting up to ``wait`` seconds
        while the window is prepared; AccessDenied with the reason unless it is granted
        (NotReady if the window is still being prepared)."""
        deadline = time.monotonic() + wait
        pause = READY_POLL
        while True:
            now = time.time()
            with self.inventories.borrow() as inventory:
                if token is None:
                    verdict = inventory.spend_named(mac, file, str(peer), now, spend=spend)
                else:
                    verdict = inventory.spend_token(token, mac, file, str(peer), now, spend=spend)
            if verdict.verdict is not Verdict.NOT_READY or time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = next_poll(pause)
        if verdict.verdict is Verdict.GRANTED:
            return verdict
        if verdict.verdict is Verdict.SPENT:
            client_log(log, mac).warning(
                "the %s token of %s's boot was used again, by %s (first used by %s): someone "
                "else has it", file.value, mac, peer, verdict.first_user)
        if verdict.verdict is Verdict.NOT_READY:
            raise NotReady(f"{file.value} of {mac}: its boot window is still being prepared",
                           mac)
        raise AccessDenied(f"{file.value} of {mac}: token {verdict.verdict.value}")

    def _render(self, shown: str, client: Client, kind: str, part_token: str | None,
                arch: Arch = Arch.AMD64) -> Content:
        if kind == urls.CLIENT_PART:
            return Content(shown, BytesSource(build_client_part(self.config, client)),
                           client.mac)
        if kind == urls.SCRIPT:
            text = scripts.ipxe_script(self.config, client, part_token)
        elif kind == urls.GRUB_DIR:
            text = scripts.grub_client_config(self.config, client, part_token, arch)
        else:
            text = scripts.pxelinux_config(self.config, client, part_token)
        return Content(shown, BytesSource(text.encode()), client.mac, Stage.LOADER)

    def _unregistered(self, name: str, mac: str, kind: str) -> Content:
        if self.config.dhcp.unknown is not UnknownPolicy.BOOT or kind == urls.CLIENT_PART:
            raise NotFound(f"{mac} is not a registered client")
        if kind == urls.SCRIPT:
            text = scripts.unregistered_ipxe(self.config, mac)
        elif kind == urls.GRUB_DIR:
            text = scripts.unregistered_grub(mac)
        else:
            text = scripts.unregistered_pxelinux(mac)
        return Content(name, BytesSource(text.encode()), mac)
