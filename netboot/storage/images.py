"""Golden images that client roots are cloned from, kept by the configured store.

An image is always made as a local file first (mke2fs -d, mmdebstrap, or a
copy of an imported file) at the store's staging path, under a temporary name
renamed into place; the store then keeps it (the file store: that file is the
image; the RBD store: a new version in the pool). Which clients use an image is
read from the inventory, never stored twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

from netboot.arch import Arch
from netboot.config import Config
from netboot.errors import Conflict, NotFound, ValidationError
from netboot.host.files import atomic_path, fsync_dir, remove_stale_temps
from netboot.initramfs import kernel
from netboot.initramfs.sysroot import BUSYBOX, Sysroot, SysrootError, sysroot
from netboot.inventory.store import Inventory
from netboot.size import parse_size
from netboot.storage.backend import Storage, open_storage
from netboot.storage.clone import (
    Method,
    Progress,
    clone_file,
    ext4_from_tree,
    is_ext_filesystem,
)
from netboot.storage.filestore import detect_layout
from netboot.storage.model import Image, ImageError, Layout, parse_image_ref
from netboot.storage.osfiles import OsOptions
from netboot.storage.osimage import build_debian_image, check_packages

__all__ = ["Image", "ImageError", "Layout", "detect_layout"]

IMAGE_MODE = 0o644  # images hold no secrets; a client's clone of one is 0o600
BUILTIN_SIZE = parse_size("32M")


def _users(inventory: Inventory | None, image: Image) -> Image:
    """``image`` with the clients that use it: cloned from that version, or from the image
    before its versions were recorded (the name alone: any version may be theirs)."""
    if inventory is None:
        return image
    return replace(image, clients=tuple(c.hostname for c in inventory.clients()
                                        if c.image in (image.ref, image.name)))


def _prepare(config: Config, name: str) -> tuple[Storage, Path]:
    """The store and the staging path to make image ``name``'s next version at."""
    storage = open_storage(config)
    final = storage.staging(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final.parent)
    return storage, final


def _dir_bytes(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_size
    return total


def build_image(config: Config, name: str, from_dir: Path, size: int | None = None,
                made: str | None = None) -> Image:
    """An ext4 image holding ``from_dir``'s tree, made by ``mke2fs -d`` (no mount, no root);
    ``made`` says how, for ``image list`` (default: from that directory).

    Without ``size``: the tree's size plus half again and 32 MiB for the journal
    and metadata, rounded to a MiB.
    """
    if not from_dir.is_dir():
        raise ValidationError(f"{from_dir} is not a directory")
    storage, final = _prepare(config, name)
    if size is None:
        size = ((_dir_bytes(from_dir) * 3 // 2 + (32 << 20)) >> 20) << 20
    with atomic_path(final, mode=IMAGE_MODE) as temp:
        with open(temp, "xb") as f:
            f.truncate(size)
        ext4_from_tree(from_dir, temp, name,
                       f"mke2fs could not build image {name} from {from_dir}", ImageError)
    return storage.keep_image(name, final, made or f"mke2fs -d {from_dir}")


def stage_builtin(root: Path, programs: Sysroot) -> None:
    """The built-in image's tree: static busybox of ``programs``' architecture, its applets,
    and netboot's /sbin/init."""
    try:
        busybox = programs.path(BUSYBOX)
        applets = [Path(a).name for a in programs.applets()]
    except SysrootError as err:
        raise ImageError(f"{err} (Debian package busybox-static)") from None
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "root"):
        (root / d).mkdir()
    shutil.copyfile(busybox, root / "bin" / "busybox")
    (root / "bin" / "busybox").chmod(0o755)
    for applet in applets:
        if applet not in ("busybox", "init"):
            (root / "bin" / applet).symlink_to("busybox")
    init = resources.files("netboot.storage") / "data" / "builtin-init.sh"
    (root / "sbin" / "init").write_text(init.read_text())
    (root / "sbin" / "init").chmod(0o755)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def build_builtin(config: Config, name: str = "builtin", size: int | None = None,
                  arch: Arch = Arch.AMD64) -> Image:
    """The tiny image for the lab and tests (see ``netboot/storage/data/builtin-init.sh``),
    for machines of ``arch``."""
    programs = sysroot(config, arch, progress=lambda _: None)
    config.storage.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.storage.cache) as tmp:
        stage_builtin(Path(tmp), programs)
        return build_image(config, name, Path(tmp), size or BUILTIN_SIZE,
                           "built-in" if arch is Arch.AMD64 else f"built-in ({arch})")


def build_debian(config: Config, name: str, suite: str, packages: tuple[str, ...],
                 size: int | None, *, sanboot: bool,
                 progress: Callable[[str], None], files: Path | None = None) -> Image:
    """A Debian golden image built by mmdebstrap (see netboot.storage.osimage), in this store.

    Method ``initramfs`` images get the served kernel's modules (what
    ``netboot kernel fetch`` installed), since that kernel runs them; a
    ``sanboot`` image is a bootable disk with its own kernel instead. ``files``: a tree
    copied into the root.
    """
    storage = open_storage(config)
    final = storage.staging(name)
    check_packages(packages)
    if os.geteuid() != 0:
        raise ImageError(f"building image {name} from Debian packages needs root "
                         "(mmdebstrap --mode=root unpacks a root tree with its owners); "
                         "run it as root, or build elsewhere and `netboot image import`")
    final.parent.mkdir(parents=True, exist_ok=True)
    modules = None if sanboot else kernel.current(config).modules
    path = build_debian_image(name, suite, packages, size, modules, config.storage.cache,
                              final, progress, OsOptions(sanboot=sanboot), files=files)
    os.chmod(path, IMAGE_MODE)
    fsync_dir(path.parent)
    made = " ".join(["mmdebstrap", suite, *(f"+{p}" for p in packages),
                     *([f"+files {files}"] if files is not None else []),
                     *(["(sanboot disk)"] if sanboot else [])])
    return storage.keep_image(name, path, made)


def import_image(config: Config, name: str, source: Path,
                 progress: Progress | None = None) -> tuple[Image, Method]:
    """Copy an existing ext2/3/4 image file in (a reflink when the filesystems allow)."""
    if not source.is_file():
        raise NotFound(f"{source} is not a file")
    if not is_ext_filesystem(source):
        raise ValidationError(f"{source} is not an ext2/3/4 filesystem image "
                              "(no superblock magic at byte 1080)")
    storage, final = _prepare(config, name)
    with atomic_path(final, mode=IMAGE_MODE) as temp:
        method = clone_file(source, temp, progress)
    return storage.keep_image(name, final, f"import {source} ({method.value})",
                              progress), method


def get_image(config: Config, text: str, inventory: Inventory | None = None) -> Image:
    """The image ``text`` names (``NAME``: its newest version, or ``NAME@N``)."""
    ref = parse_image_ref(text)
    image = open_storage(config).find_image(ref)
    if image is None:
        what = f"no image named {ref.name}" if ref.version is None else \
            f"image {ref.name} has no version {ref.version}"
        raise NotFound(f"{what} (see `netboot image list`)")
    return _users(inventory, image)


def list_images(config: Config, inventory: Inventory | None) -> list[Image]:
    """Every version of every image, with the clients that use each."""
    return [_users(inventory, image) for image in open_storage(config).images()]


def remove_image(config: Config, inventory: Inventory, text: str) -> list[Image]:
    """Delete version ``NAME@N``, or with ``NAME`` every version of it, unless a registered
    client uses one (or, in a store that knows its clones, any clone of one exists);
    nothing is deleted when any is refused."""
    ref = parse_image_ref(text)
    doomed = [get_image(config, text, inventory)] if ref.version is not None else \
        [i for i in list_images(config, inventory) if i.name == ref.name]
    if not doomed:
        raise NotFound(f"no image named {ref.name} (see `netboot image list`)")
    if users := sorted({c for i in doomed for c in i.clients}):
        raise Conflict(f"image {text} is used by {len(users)} client(s): "
                       f"{', '.join(users)}; remove them first")
    storage = open_storage(config)
    for image in doomed:
        storage.drop_image(image)
    return doomed
