"""Tests of the expansion of FILE arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixtools_cli.errors import UsageError
from pixtools_cli.inputs import expand_inputs


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("b.jpg", "a.jpg", "c.png", "sub/d.jpg"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path


def test_expand_pattern_sorted(folder: Path) -> None:
    paths = expand_inputs([f"{folder}/*.jpg"])

    assert [path.name for path in paths] == ["a.jpg", "b.jpg"]


def test_expand_recursive_pattern(folder: Path) -> None:
    paths = expand_inputs([f"{folder}/**/*.jpg"])

    assert sorted(path.name for path in paths) == ["a.jpg", "b.jpg", "d.jpg"]


def test_expand_drops_repeats(folder: Path) -> None:
    paths = expand_inputs([str(folder / "a.jpg"), f"{folder}/*.jpg"])

    assert [path.name for path in paths] == ["a.jpg", "b.jpg"]


def test_pattern_without_match(folder: Path) -> None:
    with pytest.raises(UsageError, match=r"no file matches '.*\*\.gif'"):
        expand_inputs([f"{folder}/*.gif"])


def test_missing_file(folder: Path) -> None:
    with pytest.raises(UsageError, match=r"missing\.jpg: no such file"):
        expand_inputs([str(folder / "missing.jpg")])


def test_folder_rejected(folder: Path) -> None:
    with pytest.raises(UsageError, match="is a folder"):
        expand_inputs([str(folder / "sub")])
