"""`netboot image` as people use it: versions built, listed and removed one at a time.

The ``initialised`` fixture is in conftest.py.
"""

import json


def test_building_a_name_twice_reports_its_second_version(initialised):
    initialised("image", "build", "tiny", "--builtin")
    out = initialised("image", "build", "tiny", "--builtin").stdout
    assert out.startswith("built image tiny@2 (filesystem)")


def test_image_list_has_a_row_per_version_with_how_it_was_made(initialised):
    initialised("image", "build", "tiny", "--builtin")
    initialised("image", "build", "tiny", "--builtin")
    rows = [line.split() for line in initialised("image", "list").stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows if r] == [("tiny@1", "filesystem"),
                                                  ("tiny@2", "filesystem")]
    listed = json.loads(initialised("image", "list", "--json").stdout)
    assert [(i["image"], i["made"]) for i in listed] == [("tiny@1", "built-in"),
                                                         ("tiny@2", "built-in")]


def test_client_add_with_a_version_clones_that_version(initialised):
    initialised("image", "build", "tiny", "--builtin")
    initialised("image", "build", "tiny", "--builtin")
    initialised("client", "add", "52:54:00:00:00:31", "--image", "tiny@1", "--size", "64M")
    shown = json.loads(initialised("client", "show", "52:54:00:00:00:31", "--json").stdout)
    assert shown["image"] == "tiny@1"


def test_removing_the_version_a_client_uses_is_refused_and_names_it(initialised):
    initialised("image", "build", "tiny", "--builtin")
    initialised("client", "add", "52:54:00:00:00:31", "--image", "tiny", "--size", "64M")
    err = initialised("image", "remove", "tiny@1", expect=1).stderr
    assert "image tiny@1 is used by 1 client(s): node-525400000031" in err


def test_removing_an_unused_version_leaves_the_others(initialised):
    initialised("image", "build", "tiny", "--builtin")
    initialised("image", "build", "tiny", "--builtin")
    assert initialised("image", "remove", "tiny@1").stdout == "removed image tiny@1\n"
    listed = json.loads(initialised("image", "list", "--json").stdout)
    assert [i["image"] for i in listed] == ["tiny@2"]
