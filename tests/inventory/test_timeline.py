"""Cutting a client's stage log into boots (pure)."""

from netboot.inventory.stages import Stage
from netboot.inventory.timeline import NEW_BOOT_GAP, Boot, split_boots

# As a lab boot logs it: /init reports initramfs once udhcpc's DHCP gave it an address.
IPXE_BOOT = [(Stage.DHCP, 0.0), (Stage.LOADER, 1.0), (Stage.DHCP, 2.0), (Stage.LOADER, 3.0),
             (Stage.KERNEL, 4.0), (Stage.DHCP, 6.0), (Stage.INITRAMFS, 7.0),
             (Stage.NETWORK, 8.0), (Stage.LOGIN, 9.0), (Stage.ROOT, 10.0)]


def test_a_chained_ipxe_boot_with_udhcpc_is_one_boot():
    assert split_boots(IPXE_BOOT) == [Boot(0.0, (
        (Stage.DHCP, 0.0), (Stage.LOADER, 1.0), (Stage.KERNEL, 4.0), (Stage.INITRAMFS, 7.0),
        (Stage.NETWORK, 8.0), (Stage.LOGIN, 9.0), (Stage.ROOT, 10.0)))]


def test_a_dhcp_after_the_root_starts_the_next_boot():
    second = [(stage, at + 100.0) for stage, at in IPXE_BOOT]
    boots = split_boots(IPXE_BOOT + second)
    assert [b.started for b in boots] == [0.0, 100.0]


def test_a_dhcp_after_a_failure_starts_the_next_boot():
    boots = split_boots([(Stage.DHCP, 0.0), (Stage.LOADER, 1.0), (Stage.FAILED, 2.0),
                         (Stage.DHCP, 30.0)])
    assert [b.last for b in boots] == [Stage.FAILED, Stage.DHCP]


def test_a_long_silence_starts_the_next_boot_without_dhcp():
    boots = split_boots([(Stage.LOADER, 0.0), (Stage.LOADER, NEW_BOOT_GAP + 1.0)])
    assert len(boots) == 2


def test_seconds_are_counted_from_the_boots_start():
    boot = split_boots(IPXE_BOOT)[0]
    assert boot.seconds()[Stage.ROOT] == 10.0 and boot.seconds()[Stage.DHCP] == 0.0
