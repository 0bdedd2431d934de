"""What netboot needs from a place that keeps golden images and client roots: a small protocol.

Everything above (image commands, provisioning, the CLI) speaks :class:`Storage`
and :class:`netboot.storage.location.Location` only. Two implementations:
files under ``state_dir`` (:mod:`netboot.storage.filestore`, the default) and a
Ceph pool (:mod:`netboot.storage.rbdstore`). An image is always made as a local
file first (mke2fs, mmdebstrap and imports write files); the store then keeps it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

from netboot.config import Config, StorageKind
from netboot.storage.clone import Progress
from netboot.storage.filestore import FileStore
from netboot.storage.location import Location, Store
from netboot.storage.model import Image, ImageRef


class Storage(Protocol):
    """Golden images, and the roots cloned from them."""

    kind: StorageKind

    def staging(self, name: str) -> Path:
        """Where image ``name``'s next version is made as a file before :meth:`keep_image`
        takes it."""

    def keep_image(self, name: str, staged: Path, made: str,
                   progress: Progress | None = None) -> Image:
        """Make the file ``staged`` image ``name``'s next version; ``made`` says how."""

    def find_image(self, ref: ImageRef) -> Image | None:
        """That version of the image (its newest without one), or None; ``clients`` empty."""

    def images(self) -> list[Image]:
        """Every version of every image, by name then version; ``clients`` left empty."""

    def drop_image(self, image: Image) -> None:
        """Delete that version of an image; refused while a clone of it exists."""

    def root_location(self, hostname: str) -> Location:
        """Where the root of client ``hostname`` is kept."""

    def make_root(self, location: Location, image: Image | None, size: int,
                  progress: Progress | None = None) -> str:
        """Create ``location``: a clone of ``image`` (None: blank) of ``size`` bytes, whole or
        not at all; returns how it was made (for people)."""

    def make_upper(self, location: Location, size: int) -> str:
        """Create ``location``: an overlay client's empty upper layer of ``size`` bytes (an
        ext4 filesystem holding ``upper/`` and ``work/``); returns how it was made."""

    def remove(self, location: Location) -> None:
        """Delete a root or LUN made here; one already gone is no error."""

    def remove_abandoned(self, location: Location) -> None:
        """Remove a root whose maker died (an interrupted ``client add``), breaking whatever
        hold the dead process left on it."""

    def allocated(self, location: Location) -> int | None:
        """Bytes really allocated to ``location`` (its own, not its image's); None: unknown."""

    def recover(self) -> list[str]:
        """Remove what an interrupted image import or clone left; what was removed."""


def open_storage(config: Config) -> Storage:
    """The store ``storage.backend`` names."""
    if config.storage.backend is StorageKind.RBD:
        from netboot.storage.rbdstore import RbdStore  # Ceph's bindings only when chosen
        return RbdStore(config)
    return FileStore(config)


def store_of(config: Config, location: Location) -> Storage:
    """The store that holds ``location`` (a file root stays the file store's after
    ``storage.backend`` changes to rbd, and the other way round)."""
    kind = StorageKind.RBD if location.store is Store.RBD else StorageKind.FILE
    return open_storage(config if config.storage.backend is kind else replace(
        config, storage=replace(config.storage, backend=kind)))


def describe(location: Location) -> str:
    """Where a LUN lives, for people: ``file PATH`` or ``rbd POOL/IMAGE``."""
    return f"{location.store} {location.name}"
