"""The sanboot iPXE script: golden output, one-way CHAP, and what it does on failure."""

from dataclasses import replace
from pathlib import Path

from netboot.boot.sanboot import render_sanboot_script, sanboot_uri
from netboot.inventory.clients import BootMethod
from tests.conftest import SAMPLE_CLIENT

GOLDEN = Path(__file__).parent / "golden" / "sanboot.ipxe"

CLIENT = replace(SAMPLE_CLIENT, image="deb12", boot_method=BootMethod.SANBOOT)


def test_script_matches_golden(make_config):
    assert render_sanboot_script(make_config(), CLIENT) == GOLDEN.read_text()


def test_uri_names_portal_port_lun_and_target(make_config):
    config = make_config("target:\n  portal_address: 198.18.0.2\n  portal_port: 3261\n")
    assert sanboot_uri(config, CLIENT) == \
        "iscsi:198.18.0.2::3261:1:iqn.2026-11.org.example:target:web1"


def test_one_way_chap_sets_no_reverse_credentials(make_config):
    script = render_sanboot_script(make_config("target:\n  mutual_chap: false\n"), CLIENT)
    assert "reverse-" not in script and "Mutual0123456789" not in script


def test_onfail_shell_drops_to_the_ipxe_shell(make_config):
    script = render_sanboot_script(make_config("boot:\n  onfail: shell\n"), CLIENT)
    assert script.endswith("\nshell\n")
