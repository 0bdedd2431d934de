"""Kernel package resolution: metapackage -> versioned package, package index fields."""

import pytest

from netboot.initramfs.kernel import (
    KernelError,
    parse_kernel_config,
    parse_package_infos,
    versioned_package,
)

DEPENDS = """\
linux-image-cloud-amd64
  Depends: linux-image-6.1.0-56-cloud-amd64
"""
SHOW = """\
Package: linux-image-6.1.0-56-cloud-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb
Size: 26713492
SHA256: e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee
Description: Linux 6.1 for x86-64 cloud

Package: linux-image-6.1.0-56-cloud-amd64
Version: 6.1.176-1
"""


def test_metapackage_resolves_to_versioned_image():
    assert versioned_package("cloud-amd64", DEPENDS) == "linux-image-6.1.0-56-cloud-amd64"


def test_generic_flavour_does_not_take_the_cloud_package():
    with pytest.raises(KernelError, match="no versioned"):
        versioned_package("amd64", DEPENDS)


def test_package_info_takes_each_packages_first_stanza():
    [info] = parse_package_infos(SHOW).values()
    assert (info.version, info.size) == ("6.1.192-2", 26713492)
    assert info.filename.endswith("linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb")


def test_package_info_without_checksum_is_an_error():
    with pytest.raises(KernelError, match="SHA256"):
        parse_package_infos("Package: x\nVersion: 1\nFilename: x.deb\nSize: 1\n")


def test_package_infos_of_several_packages_are_found_by_name():
    other = SHOW.replace("linux-image-6.1.0-56-cloud-amd64", "busybox-static")
    assert list(parse_package_infos(SHOW + "\n" + other)) == [
        "linux-image-6.1.0-56-cloud-amd64", "busybox-static"]


def test_kernel_config_keeps_set_options_only():
    options = parse_kernel_config("CONFIG_RD_ZSTD=y\n# CONFIG_RD_LZ4 is not set\n"
                                  'CONFIG_LOCALVERSION=""\n')
    assert options == {"CONFIG_RD_ZSTD": "y", "CONFIG_LOCALVERSION": ""}
