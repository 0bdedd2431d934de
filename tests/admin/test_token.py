"""The admin interface's bearer token."""

import stat

import pytest

from netboot.admin.token import authorized, ensure_token
from netboot.errors import NetbootError


def test_a_token_is_made_once_0600_and_kept(tmp_path):
    path = tmp_path / "admin.token"
    token = ensure_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 40 and ensure_token(path) == token


def test_an_empty_token_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "admin.token").write_text("\n")
    with pytest.raises(NetbootError, match=r"admin\.token"):
        ensure_token(tmp_path / "admin.token")


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.5", "::1", "::ffff:127.0.0.1"])
def test_loopback_needs_no_token(peer):
    assert authorized(peer, None, "secret")


@pytest.mark.parametrize("header", [None, "secret", "Bearer wrong", "Basic c2VjcmV0"])
def test_another_address_without_the_token_is_refused(header):
    assert not authorized("198.18.0.2", header, "secret")


def test_another_address_with_the_token_is_let_in():
    assert authorized("198.18.0.2", "Bearer secret", "secret")
