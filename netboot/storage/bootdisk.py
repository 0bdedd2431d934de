"""A BIOS-bootable disk (MBR, one ext4 partition, GRUB) from a root tree, without loop devices.

Method sanboot boots the LUN the way a BIOS boots a local disk (iPXE's
``sanboot`` provides it through INT 13h), so a sanboot image is a disk, not
a bare filesystem: sfdisk writes the partition table into the file,
``mke2fs -d -E offset=`` writes the root filesystem into its partition, and
GRUB's ``boot.img`` and a ``core.img`` from ``grub-mkimage`` go into the MBR
and the gap before the partition. ``grub-bios-setup`` would do that last
step but insists on finding the block device of its own directory, which a
container does not have; the two fields it sets are the ones Debian's cloud
image builder (debian-cloud-images) also sets by hand, as below.
"""

from __future__ import annotations

from pathlib import Path

from netboot.host.run import run
from netboot.storage.osfiles import OsImageError

SECTOR = 512
PARTITION_START = 2048  # sectors: 1 MiB, room for core.img in the gap
GRUB_DIR = Path("/usr/lib/grub/i386-pc")
# core.img carries every module it needs, so nothing is loaded from the disk but grub.cfg.
GRUB_MODULES = ("biosdisk", "part_msdos", "ext2", "normal", "configfile", "linux", "echo",
                "test", "serial", "terminal", "search", "search_label")
# Offsets in GRUB's i386-pc boot.img (grub-core/boot/i386/pc/boot.S, include/grub/i386/pc/boot.h).
BOOT_CODE_SIZE = 0x1B8  # what follows is the disk signature and the partition table
KERNEL_SECTOR = 0x5C  # u64: LBA of core.img's first sector
BOOT_DRIVE = 0x64  # 0xff: the drive the BIOS booted from
DRIVE_CHECK = 0x66  # nop'ed for hard disks: BIOSes that pass a wrong drive number
# In core.img's first sector (diskboot.S): the blocklist of the rest of core.img.
BLOCKLIST_START = SECTOR - 12  # u64 start LBA, u16 length (set by grub-mkimage), u16 segment


def grub_boot_sectors(mbr: bytes, boot_img: bytes, core_img: bytes,
                      core_lba: int = 1) -> tuple[bytes, bytes]:
    """(MBR, core.img) to write at LBA 0 and ``core_lba``: boot.img's code patched to
    load core.img from there, the MBR's partition table kept."""
    if len(mbr) != SECTOR or len(boot_img) != SECTOR:
        raise OsImageError("MBR and boot.img must be one 512-byte sector each")
    code = bytearray(boot_img[:BOOT_CODE_SIZE])
    code[KERNEL_SECTOR:KERNEL_SECTOR + 8] = core_lba.to_bytes(8, "little")
    code[BOOT_DRIVE] = 0xFF
    code[DRIVE_CHECK:DRIVE_CHECK + 2] = b"\x90\x90"
    core = bytearray(core_img)
    core[BLOCKLIST_START:BLOCKLIST_START + 8] = (core_lba + 1).to_bytes(8, "little")
    padded = bytes(core) + bytes(-len(core) % SECTOR)
    if core_lba + len(padded) // SECTOR > PARTITION_START:
        raise OsImageError(f"GRUB core.img ({len(core_img)} bytes) does not fit before the "
                           f"partition at sector {PARTITION_START}")
    return bytes(code) + mbr[BOOT_CODE_SIZE:], padded


def make_boot_disk(tree: Path, image: Path, size: int, label: str, grub_cfg: str) -> None:
    """``image``: ``size`` bytes, MBR + GRUB + one bootable ext4 partition holding ``tree``
    (labelled ``label``, with ``grub_cfg`` as its /boot/grub/grub.cfg)."""
    cfg = tree / "boot/grub/grub.cfg"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(grub_cfg)
    with image.open("wb") as f:
        f.truncate(size)
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(image)],
        what=f"writing the partition table of {image.name}", error=OsImageError,
        input=f"start={PARTITION_START}, type=83, bootable\n")
    offset = PARTITION_START * SECTOR
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", label[:16], "-d", str(tree),
         "-E", f"offset={offset}", str(image), f"{(size - offset) // 1024}k"],
        what=f"making the root filesystem of {image.name} from {tree}", error=OsImageError)
    core_path = image.with_name(image.name + ".core")
    early = image.with_name(image.name + ".early.cfg")
    # Find the root by its label, whatever BIOS drive number the SAN disk got.
    early.write_text(f"search --no-floppy --label --set=root {label[:16]}\n"
                     "set prefix=($root)/boot/grub\n")
    try:
        run(["grub-mkimage", "-O", "i386-pc", "-o", str(core_path), "-c", str(early),
             "-p", "/boot/grub", *GRUB_MODULES], what="making GRUB's core.img",
            error=OsImageError)
        core_img = core_path.read_bytes()
    finally:
        core_path.unlink(missing_ok=True)
        early.unlink(missing_ok=True)
    with image.open("r+b") as f:
        mbr, core = grub_boot_sectors(f.read(SECTOR), (GRUB_DIR / "boot.img").read_bytes(),
                                      core_img)
        f.seek(0)
        f.write(mbr)
        f.seek(SECTOR)
        f.write(core)
