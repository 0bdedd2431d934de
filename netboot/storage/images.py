"""Golden images: ext4 filesystem images in ``storage.images`` that client roots are cloned from.

An image is one file, ``<images>/<name>.img``, and nothing else: it is made
under a temporary name and renamed into place, so a crash leaves either the
whole image or a temporary file that the next image command removes. Which
clients use an image is read from the inventory, never stored twice.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from netboot.config import Config
from netboot.errors import Conflict, NetbootError, NotFound, ValidationError
from netboot.host.files import atomic_path, fsync_dir, remove_stale_temps
from netboot.host.run import run
from netboot.initramfs import kernel
from netboot.inventory.store import Inventory
from netboot.names import validate_image_name
from netboot.size import parse_size
from netboot.storage.clone import Method, Progress, clone_file, is_ext_filesystem
from netboot.storage.osfiles import OsOptions
from netboot.storage.osimage import build_debian_image, check_packages

SUFFIX = ".img"
IMAGE_MODE = 0o644  # images hold no secrets; a client's clone of one is 0o600
BUSYBOX = Path("/bin/busybox")
BUILTIN_SIZE = parse_size("32M")


class ImageError(NetbootError):
    """Building, importing or removing an image failed."""


class Layout(enum.Enum):
    """What an image file is, read from its first bytes (nothing stored beside it).

    A FILESYSTEM (ext2/3/4 from byte 0) is what netboot's /init mounts (method
    ``initramfs``); a DISK (an MBR partition table, made by ``image build
    --debootstrap --sanboot``) boots its own GRUB and kernel through iPXE
    ``sanboot``. A clone of either is grown to its LUN size
    (:func:`netboot.storage.clone.grow_ext4`, :func:`netboot.storage.clone.grow_disk`).
    """

    FILESYSTEM = "filesystem"
    DISK = "disk"
    UNKNOWN = "unknown"


MBR_SIGNATURE = (510, b"\x55\xaa")  # the boot sector's last two bytes


def detect_layout(path: Path) -> Layout:
    if is_ext_filesystem(path):
        return Layout.FILESYSTEM
    offset, magic = MBR_SIGNATURE
    with open(path, "rb") as f:
        f.seek(offset)
        return Layout.DISK if f.read(len(magic)) == magic else Layout.UNKNOWN


@dataclass(frozen=True)
class Image:
    """A golden image and what it costs: apparent size and bytes really allocated."""

    name: str
    path: Path
    size: int
    used: int
    created: float
    clients: tuple[str, ...] = ()
    layout: Layout = Layout.FILESYSTEM


def image_path(config: Config, name: str) -> Path:
    return config.storage.images / f"{validate_image_name(name)}{SUFFIX}"


def _describe(config: Config, inventory: Inventory | None, path: Path) -> Image:
    st = path.stat()
    name = path.name.removesuffix(SUFFIX)
    users = tuple(c.hostname for c in inventory.clients() if c.image == name) if inventory else ()
    return Image(name, path, st.st_size, st.st_blocks * 512, st.st_mtime, users,
                 detect_layout(path))


def _prepare(config: Config, name: str) -> Path:
    final = image_path(config, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final.parent)
    if final.exists():
        raise Conflict(f"image {name} already exists ({final}); remove it first")
    return final


def _dir_bytes(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_size
    return total


def build_image(config: Config, name: str, from_dir: Path, size: int | None = None) -> Image:
    """An ext4 image holding ``from_dir``'s tree, made by ``mke2fs -d`` (no mount, no root).

    Without ``size``: the tree's size plus half again and 32 MiB for the journal
    and metadata, rounded to a MiB.
    """
    if not from_dir.is_dir():
        raise ValidationError(f"{from_dir} is not a directory")
    final = _prepare(config, name)
    if size is None:
        size = ((_dir_bytes(from_dir) * 3 // 2 + (32 << 20)) >> 20) << 20
    with atomic_path(final, mode=IMAGE_MODE) as temp:
        with open(temp, "xb") as f:
            f.truncate(size)
        run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", name[:16], "-d", str(from_dir),
             str(temp)], what=f"mke2fs could not build image {name} from {from_dir}",
            error=ImageError)
    return _describe(config, None, final)


def stage_builtin(root: Path) -> None:
    """The built-in image's tree: static busybox, its applets, and netboot's /sbin/init."""
    if not BUSYBOX.exists():
        raise ImageError(f"{BUSYBOX} is missing (Debian package busybox-static)")
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "root"):
        (root / d).mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = run([str(BUSYBOX), "--list"], what=f"listing {BUSYBOX}'s applets",
                  error=ImageError).split()
    for applet in applets:
        if applet not in ("busybox", "init"):
            (root / "bin" / applet).symlink_to("busybox")
    init = resources.files("netboot.storage") / "data" / "builtin-init.sh"
    (root / "sbin" / "init").write_text(init.read_text())
    (root / "sbin" / "init").chmod(0o755)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def build_builtin(config: Config, name: str = "builtin", size: int | None = None) -> Image:
    """The tiny image for the lab and tests (see ``netboot/storage/data/builtin-init.sh``)."""
    config.storage.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.storage.cache) as tmp:
        stage_builtin(Path(tmp))
        return build_image(config, name, Path(tmp), size or BUILTIN_SIZE)


def build_debian(config: Config, name: str, suite: str, packages: tuple[str, ...],
                 size: int | None, *, sanboot: bool, force: bool,
                 progress: Callable[[str], None]) -> Image:
    """A Debian golden image built by mmdebstrap (see netboot.storage.osimage), in this store.

    Method ``initramfs`` images get the served kernel's modules (what
    ``netboot kernel fetch`` installed), since that kernel runs them; a
    ``sanboot`` image is a bootable disk with its own kernel instead. An
    existing NAME is replaced only with ``force``: clients cloned from it keep
    their own copy.
    """
    final = image_path(config, name)
    check_packages(packages)
    if os.geteuid() != 0:
        raise ImageError(f"building image {name} from Debian packages needs root "
                         "(mmdebstrap --mode=root unpacks a root tree with its owners); "
                         "run it as root, or build elsewhere and `netboot image import`")
    if final.exists() and not force:
        raise Conflict(f"image {name} already exists ({final}); --force replaces it")
    modules = None if sanboot else kernel.current(config).modules
    path = build_debian_image(name, suite, packages, size, modules, config.storage.cache,
                              final.parent, progress, OsOptions(sanboot=sanboot))
    os.chmod(path, IMAGE_MODE)
    fsync_dir(path.parent)
    return _describe(config, None, path)


def import_image(config: Config, name: str, source: Path,
                 progress: Progress | None = None) -> tuple[Image, Method]:
    """Copy an existing ext2/3/4 image file in (a reflink when the filesystems allow)."""
    if not source.is_file():
        raise NotFound(f"{source} is not a file")
    if not is_ext_filesystem(source):
        raise ValidationError(f"{source} is not an ext2/3/4 filesystem image "
                              "(no superblock magic at byte 1080)")
    final = _prepare(config, name)
    with atomic_path(final, mode=IMAGE_MODE) as temp:
        method = clone_file(source, temp, progress)
    return _describe(config, None, final), method


def get_image(config: Config, name: str, inventory: Inventory | None = None) -> Image:
    path = image_path(config, name)
    if not path.is_file():
        raise NotFound(f"no image named {name} (see `netboot image list`)")
    return _describe(config, inventory, path)


def list_images(config: Config, inventory: Inventory) -> list[Image]:
    directory = config.storage.images
    if not directory.is_dir():
        return []
    return [_describe(config, inventory, p) for p in sorted(directory.glob(f"*{SUFFIX}"))
            if not p.name.startswith(".")]


def remove_image(config: Config, inventory: Inventory, name: str) -> Image:
    """Delete an image, unless a client was cloned from it and is still registered."""
    image = get_image(config, name, inventory)
    if image.clients:
        raise Conflict(f"image {name} is used by {len(image.clients)} client(s): "
                       f"{', '.join(image.clients)}; remove them first")
    image.path.unlink()
    fsync_dir(image.path.parent)
    return image
