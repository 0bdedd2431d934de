"""The copy progress bar: shown for large copies only, on stderr."""

from __future__ import annotations

from netboot.cli.progress import LARGE, copy_progress


def test_large_copy_shows_a_bar_on_stderr(capsys) -> None:
    with copy_progress("cloning golden") as update:
        for done in range(0, LARGE * 2 + 1, LARGE // 2):
            update(done, LARGE * 2)
    captured = capsys.readouterr()
    assert "cloning golden" in captured.err and captured.out == ""


def test_small_copy_shows_nothing(capsys) -> None:
    with copy_progress("cloning tiny") as update:
        update(1 << 20, 1 << 20)
    assert capsys.readouterr().err == ""
