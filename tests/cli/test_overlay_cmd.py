"""`client add --boot-method overlay`, `client set --image` and `client reset` as a user
runs them (no tgtd answers here: the target is applied later by serve)."""

MAC = "52:54:00:aa:00:31"
FULL = "52:54:00:aa:00:32"


def test_an_overlay_client_is_added_with_its_upper_layer(initialised):
    initialised("image", "build", "builtin", "--builtin")
    out = initialised("client", "add", MAC, "--boot-method", "overlay", "--image", "builtin",
                      "--overlay-size", "64M").stdout
    assert "overlay: image builtin@1 read-only (LUN 255) under an empty upper layer" in out
    assert "64 MiB" in out or "64M" in out
    shown = initialised("client", "show", MAC).stdout
    assert "overlay" in shown and "builtin@1" in shown


def test_overlay_needs_an_image_and_takes_no_size(initialised):
    err = initialised("client", "add", MAC, "--boot-method", "overlay", expect=1).stderr
    assert "needs --image" in err
    initialised("image", "build", "builtin", "--builtin")
    err = initialised("client", "add", MAC, "--boot-method", "overlay", "--image", "builtin",
                      "--size", "1G", expect=1).stderr
    assert "--overlay-size, not --size" in err


def test_set_image_moves_an_overlay_client_and_refuses_a_full_clone(initialised):
    initialised("image", "build", "builtin", "--builtin")
    initialised("image", "build", "builtin", "--builtin")
    initialised("client", "add", MAC, "--boot-method", "overlay", "--image", "builtin@1")
    initialised("client", "add", FULL, "--image", "builtin@1", "--size", "64M")
    out = initialised("client", "set", MAC, "--image", "builtin@2").stdout
    assert "lower layer builtin@1 -> builtin@2, upper layer kept" in out
    err = initialised("client", "set", FULL, "--image", "builtin@2", expect=1).stderr
    assert "client reimage" in err
    err = initialised("image", "remove", "builtin@2", expect=1).stderr
    assert "is used by 1 client(s)" in err
    initialised("client", "remove", MAC, "--purge")
    assert "removed image builtin@2" in initialised("image", "remove", "builtin@2").stdout


def test_set_image_goes_alone(initialised):
    err = initialised("client", "set", MAC, "--image", "x", "--no-bmc", expect=2).stderr
    assert "--image goes alone" in err


def test_reset_asks_first_and_empties_with_yes(initialised):
    initialised("image", "build", "builtin", "--builtin")
    initialised("client", "add", MAC, "--boot-method", "overlay", "--image", "builtin",
                "--overlay-size", "32M")
    err = initialised("client", "reset", MAC, expect=1).stderr  # no answer on stdin: no
    assert "empty the upper layer of" in err and "Aborted" in err
    out = initialised("client", "reset", MAC, "--yes").stdout
    assert "empty upper layer" in out and "deleted" in out


def test_lun_list_shows_the_upper_and_the_shared_image(initialised):
    initialised("image", "build", "builtin", "--builtin")
    initialised("client", "add", MAC, "--boot-method", "overlay", "--image", "builtin",
                "--overlay-size", "32M")
    rows = initialised("lun", "list", MAC).stdout.splitlines()
    assert rows[1].split()[:2] == ["1", "upper"]
    assert rows[2].split()[:2] == ["255", "image"] and "builtin@1.img" in rows[2]
