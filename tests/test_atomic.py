"""trainers/_atomic.py: files and directories appear whole under their final names, or not at all."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from trainers._atomic import build_directory, build_directory_once, write_text_atomic


def _leftovers(directory: Path) -> list[str]:
    """Hidden temporary names left in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("durable", [False, True])
def test_a_file_is_replaced_whole_and_no_temporary_stays(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "sub" / "latest"
    write_text_atomic(path, "one", durable=durable)
    write_text_atomic(path, "two", durable=durable)
    assert path.read_text() == "two"
    assert _leftovers(path.parent) == []


def test_a_failed_file_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "latest"
    write_text_atomic(path, "old")
    with pytest.raises(TypeError):
        write_text_atomic(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_directory_appears_complete_and_shared(tmp_path: Path) -> None:
    final = tmp_path / "tree"

    def build(staging: Path) -> None:
        assert not final.exists()  # nothing under the final name while it is being built
        (staging / "a.txt").write_text("a")

    assert build_directory(final, build) == final
    assert (final / "a.txt").read_text() == "a"
    assert stat.S_IMODE(final.stat().st_mode) == 0o755  # readable by other users and nodes
    assert _leftovers(tmp_path) == []


def test_a_lost_race_keeps_the_first_directory(tmp_path: Path) -> None:
    final = tmp_path / "tree"

    def build_second(staging: Path) -> None:
        (staging / "who").write_text("second")
        # Another process publishes first, while this one is still building.
        build_directory(final, lambda other: (other / "who").write_text("first"))

    build_directory(final, build_second)
    assert (final / "who").read_text() == "first"
    assert _leftovers(tmp_path) == []


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    def build(staging: Path) -> None:
        (staging / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_directory(tmp_path / "tree", build)
    assert list(tmp_path.iterdir()) == []


def test_build_once_skips_a_finished_directory(tmp_path: Path) -> None:
    final = tmp_path / "encoder"
    calls: list[Path] = []

    def build(staging: Path) -> None:
        calls.append(staging)
        (staging / "config.json").write_text("{}")

    build_directory_once(final, "config.json", "building", build)
    build_directory_once(final, "config.json", "building", build)
    assert len(calls) == 1 and (final / "config.json").is_file()
