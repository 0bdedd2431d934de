import pytest

from netboot.errors import ValidationError
from netboot.size import format_size, parse_size


@pytest.mark.parametrize(("text", "value"), [
    ("512M", 512 << 20), ("2G", 2 << 30), ("1.5GiB", 3 << 29), ("4096", 4096), ("1k", 1024),
    (8192, 8192),
])
def test_sizes_parse_as_binary_units(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "-1G", "0", "2X", "1.2.3G"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValidationError):
        parse_size(text)


def test_format_size_is_short():
    assert format_size(4 << 30) == "4.0G"
    assert format_size(512 << 20) == "512M"
    assert format_size(17) == "17B"
