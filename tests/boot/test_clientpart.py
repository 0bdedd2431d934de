"""The per-client initrd part: its files, their modes, and the golden client.conf."""

import subprocess
from dataclasses import replace
from pathlib import Path

from netboot.boot.clientpart import build_client_part, render_client_conf
from netboot.inventory.clients import BootMethod
from tests.conftest import SAMPLE_CLIENT

GOLDEN = Path(__file__).parent / "golden" / "client.conf"
OVERLAY_GOLDEN = Path(__file__).parent / "golden" / "client.overlay.conf"

CLIENT = SAMPLE_CLIENT


def test_client_conf_matches_golden(make_config):
    assert render_client_conf(make_config(), CLIENT) == GOLDEN.read_text()


def test_overlay_client_conf_names_the_method_and_the_lower_lun(make_config):
    overlay = replace(CLIENT, boot_method=BootMethod.OVERLAY, image="web@3")
    assert render_client_conf(make_config(), overlay) == OVERLAY_GOLDEN.read_text()


def test_client_conf_without_mutual_chap_has_empty_reverse_credentials(make_config):
    text = render_client_conf(make_config("target:\n  mutual_chap: false\n"), CLIENT)
    assert "ISCSI_USERNAME_IN=''" in text and "Mutual0123456789" not in text


def test_part_holds_client_conf_0600_and_initiator_name(make_config):
    listing = subprocess.run(["cpio", "-itv", "--quiet"],
                             input=build_client_part(make_config(), CLIENT),
                             capture_output=True, check=True).stdout.decode()
    lines = {line.split()[-1]: line for line in listing.splitlines()}
    assert lines["etc/netboot/client.conf"].startswith("-rw-------")
    assert lines["etc/iscsi/initiatorname.iscsi"].startswith("-rw-r--r--")


def test_part_is_reproducible(make_config):
    config = make_config()
    assert build_client_part(config, CLIENT) == build_client_part(config, CLIENT)
