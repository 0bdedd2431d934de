import string

from netboot.provisioning.chap import SECRET_LENGTH, mask, new_secret, new_secret_pair


def test_secrets_are_16_alphanumeric_characters():
    for _ in range(100):
        s = new_secret()
        assert len(s) == SECRET_LENGTH == 16
        assert set(s) <= set(string.ascii_letters + string.digits)


def test_secrets_differ_between_calls():
    assert len({new_secret() for _ in range(1000)}) == 1000


def test_mutual_secret_differs_from_incoming():
    for _ in range(100):
        incoming, mutual = new_secret_pair()
        assert incoming != mutual


def test_mask_hides_every_character():
    assert mask("abcdefghijklmnop") == "*" * 16
