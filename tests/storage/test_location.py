"""Where a LUN lives, as the inventory stores it: a path, or rbd:POOL/IMAGE."""

from __future__ import annotations

import pytest

from netboot.errors import ValidationError
from netboot.storage.location import Location, Store, rbd_location


def test_text_without_the_scheme_is_a_path() -> None:
    assert Location.parse("/var/lib/netboot/luns/web1.img") == Location(
        Store.FILE, "/var/lib/netboot/luns/web1.img")


def test_an_rbd_location_reads_back_as_it_is_written() -> None:
    location = rbd_location("netboot", "root.web1")
    assert str(location) == "rbd:netboot/root.web1"
    assert Location.parse(str(location)) == location
    assert (location.pool, location.image) == ("netboot", "root.web1")


def test_an_rbd_snapshot_location_is_the_path_bs_rbd_opens_and_names_its_parts() -> None:
    location = rbd_location("netboot", "image.web", "v3")
    assert (location.name, str(location)) == ("netboot/image.web@v3",
                                              "rbd:netboot/image.web@v3")
    assert Location.parse(str(location)) == location
    assert (location.pool, location.image, location.snapshot) == ("netboot", "image.web", "v3")
    assert rbd_location("netboot", "root.web1").snapshot is None


@pytest.mark.parametrize("text", ["rbd:netboot", "rbd:/root.web1", "rbd:netboot/",
                                  "rbd:a/b/c", "rbd:netboot/root@", "rbd:netboot/root@v1@v2",
                                  "rbd:netboot/@v1", "rbd:netboot/root@v1/x"])
def test_a_malformed_rbd_location_is_refused_naming_the_form(text: str) -> None:
    with pytest.raises(ValidationError, match="write rbd:POOL/IMAGE"):
        Location.parse(text)
