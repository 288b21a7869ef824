"""Every config key, generated from the config dataclasses, given a wrong type, an out-of-range value and a
missing path: ``xstilts run`` answers each with one ``xstilts: error:`` line naming the key, exit 2, before
any compute, writing nothing.

A field added to a dataclass is covered without touching this file; one whose bad values slip through
fails here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

import search.run
from search.cli import main
from trainers.config import ConfigError, TransferConfig

WRONG_TYPE: dict[Any, str] = {int: "abc", float: "abc", bool: "maybe", str: "[1, 2]"}
"""A ``--set`` value of another type, per field type (parsed as YAML: ``[1, 2]`` is a list)."""
OUTPUT_PATHS = frozenset({"data.cache_dir", "output_dir"})
"""Paths the run writes: a missing one is created, not an error."""
CONTEXT: dict[str, list[str]] = {"data.data_dir": ["data.source=local"]}
"""Overrides under which a key is read at all (data_dir is an input only for source=local)."""


def _leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, type) of every section and field, Optional unwrapped."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[field.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        key = prefix + field.name
        yield key, hint
        if dataclasses.is_dataclass(hint):
            yield from _leaves(hint, key + ".")  # type: ignore[arg-type]


def _cases() -> Iterator[Any]:
    for key, hint in _leaves(TransferConfig):
        if dataclasses.is_dataclass(hint):
            yield pytest.param(key, "5", id=f"{key}-not-a-section")
            continue
        if typing.get_origin(hint) is Literal:
            yield pytest.param(key, "bogus", id=f"{key}-not-a-choice")
            continue
        if typing.get_origin(hint) is list:
            yield pytest.param(key, "5", id=f"{key}-not-a-list")
            continue
        if typing.get_origin(hint) is dict:
            yield pytest.param(key, "5", id=f"{key}-not-a-mapping")
            continue
        yield pytest.param(key, WRONG_TYPE[hint], id=f"{key}-wrong-type")
        if hint in (int, float):
            yield pytest.param(key, "-1", id=f"{key}-negative")
        if hint is str:
            yield pytest.param(key, "''", id=f"{key}-empty")
            is_path = key.endswith(("_dir", "_path", "name_or_path"))
            if is_path and key not in OUTPUT_PATHS:
                yield pytest.param(key, "/no/such/path", id=f"{key}-missing")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("key", "value"), list(_cases()))
def test_every_config_key_rejects_bad_values_in_one_line(
    key: str,
    value: str,
    tiny_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_path = tmp_path / "config.yaml"
    tiny_config(tmp_path / "out", "udpos", ["ccg"]).save(config_path)  # every section present
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)

    def no_compute(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{key}={value} reached run_transfer")

    monkeypatch.setattr(search.run, "run_transfer", no_compute)
    argv = ["run", "--config", str(config_path), "--backend", "local"]
    for override in [*CONTEXT.get(key, []), f"{key}={value}"]:
        argv += ["--set", override]

    code = main(argv)

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("xstilts: error: "), captured.err
    assert key.rsplit(".", 1)[-1] in lines[0], lines[0]  # the line names the field
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": {"dev_as_train": {"nope": 5}}}, "data.dev_as_train: unknown task 'nope'"),
        (
            {"data": {"dev_as_train": {"xnli": 0}}},
            r"data.dev_as_train.xnli must be the number of dev rows held out",
        ),
        ({"data": {"dev_as_train": {"xnli": "5"}}}, r"data.dev_as_train.xnli must be the number"),
        ({"data": {"dev_as_train": {"udpos": 5}}}, "data.dev_as_train: udpos is the target"),
    ],
)
def test_dev_as_train_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TransferConfig.from_dict({"target": {"task": "udpos"}, **overrides})


def test_relative_data_paths_read_from_the_command_s_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ray Train worker starts in a directory of its own: xstilts run hands it absolute data paths."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    config = TransferConfig.from_dict(
        {
            "target": {"task": "udpos"},
            "data": {"source": "xtreme", "data_dir": "../download", "cache_dir": "~/c"},
        }
    ).with_absolute_data_paths()
    assert config.data.data_dir == str(tmp_path / "download")
    assert config.data.cache_dir == "~/c"  # each node's own home: left as written
    absolute = config.with_absolute_data_paths()
    assert absolute == config
