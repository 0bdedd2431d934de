"""Module closure over modules.dep: names, aliases, built-ins and dependencies."""

from netboot.initramfs.modules import (
    ModuleTree,
    module_name,
    parse_aliases,
    parse_module_list,
    parse_modules_dep,
)

DEP = """\
kernel/drivers/scsi/iscsi_tcp.ko: kernel/drivers/scsi/libiscsi_tcp.ko kernel/lib/scsi_mod.ko
kernel/drivers/scsi/libiscsi_tcp.ko: kernel/lib/scsi_mod.ko
kernel/lib/scsi_mod.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
"""
ALIAS = """\
# Aliases extracted from modules themselves.
alias crc32c crc32c_intel
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci
"""
TREE = ModuleTree(parse_modules_dep(DEP), frozenset({"ext4"}), parse_aliases(ALIAS))


def test_module_name_drops_directory_suffix_and_dashes():
    assert module_name("kernel/arch/x86/crypto/crc32c-intel.ko.zst") == "crc32c_intel"


def test_module_list_ignores_comments_and_blank_lines():
    assert parse_module_list("# NICs\n\nigb  # Intel\ne1000-e\n") == ["igb", "e1000_e"]


def test_wildcard_aliases_are_left_out():
    assert parse_aliases(ALIAS) == {"crc32c": ("crc32c_intel",)}


def test_closure_includes_every_dependency():
    assert TREE.resolve(["iscsi_tcp"]).files == (
        "kernel/drivers/scsi/iscsi_tcp.ko", "kernel/drivers/scsi/libiscsi_tcp.ko",
        "kernel/lib/scsi_mod.ko")


def test_dependencies_of_dependencies_are_followed_even_if_not_listed():
    tree = ModuleTree(parse_modules_dep("a.ko: b.ko\nb.ko: c.ko\nc.ko:\n"), frozenset(), {})
    assert tree.resolve(["a"]).files == ("a.ko", "b.ko", "c.ko")


def test_builtin_module_needs_no_file():
    resolution = TREE.resolve(["ext4"])
    assert resolution.builtin == ("ext4",) and resolution.files == ()


def test_alias_resolves_to_its_module():
    resolution = TREE.resolve(["crc32c"])
    assert resolution.load == ("crc32c_intel",)
    assert resolution.aliases == {"crc32c": ("crc32c_intel",)}


def test_unknown_module_is_reported_missing_not_fatal():
    resolution = TREE.resolve(["igb", "iscsi_tcp"])
    assert resolution.missing == ("igb",) and resolution.load == ("iscsi_tcp",)


def test_load_order_follows_the_request_and_keeps_paths_aligned():
    resolution = TREE.resolve(["xfs", "iscsi-tcp", "xfs"])
    assert resolution.load == ("xfs", "iscsi_tcp")
    assert resolution.paths == ("kernel/fs/xfs/xfs.ko", "kernel/drivers/scsi/iscsi_tcp.ko")
