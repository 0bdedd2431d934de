"""Running the host's tools: what a failure and a missing program say."""

from pathlib import Path

import pytest

from netboot.errors import NetbootError
from netboot.host.run import run, run_bytes


class ToolError(NetbootError):
    """The caller's own error class."""


def test_the_output_of_a_tool_that_succeeds_is_returned() -> None:
    assert run(["sh", "-c", "echo hello"], what="greeting") == "hello\n"


def test_a_failure_says_what_and_the_last_line_of_stderr() -> None:
    script = "echo progress; echo 'first complaint' >&2; echo 'the real problem' >&2; exit 3"
    with pytest.raises(ToolError) as caught:
        run(["sh", "-c", script], what="growing disk.img", error=ToolError)
    assert str(caught.value) == "growing disk.img: the real problem"


def test_a_silent_failure_gives_its_exit_status() -> None:
    with pytest.raises(NetbootError, match=r"^checking x: exit 4$"):
        run(["sh", "-c", "exit 4"], what="checking x")


def test_an_exit_status_in_ok_is_an_answer() -> None:
    assert run(["sh", "-c", "echo fixed; exit 1"], what="checking x", ok=(0, 1)) == "fixed\n"


def test_a_missing_program_names_its_debian_package(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run there
    with pytest.raises(ToolError, match=r"^sfdisk is not installed \(Debian package fdisk;"):
        run(["sfdisk", "--json", "disk.img"], what="reading disk.img", error=ToolError)


def test_a_missing_working_directory_is_not_a_missing_program(tmp_path: Path) -> None:
    with pytest.raises(NetbootError, match=r"^downloading: .*gone"):
        run(["true"], what="downloading", cwd=tmp_path / "gone")


def test_bytes_go_through_a_filter_unchanged() -> None:
    data = bytes(range(256)) * 4
    assert run_bytes(["cat"], what="copying", input=data) == data
