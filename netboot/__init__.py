"""netboot: diskless-boot orchestrator (DHCP/PXE, TFTP/HTTP, iSCSI-root initramfs, tgt SAN)."""

__version__ = "0.1.0"
