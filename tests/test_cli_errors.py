"""``xstilts run`` with bad input: one clear error line on stderr, exit code 2, before any compute, no writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import search.run
from search.cli import main
from trainers.data.miniature import ensure_miniature

# (id, --set overrides, a fragment the error line must contain). "{bad_columns}" is the local data dir
# whose PAWS-X English train file lacks the hub's ``sentence1`` column.
CASES: list[tuple[str, list[str], str]] = [
    ("unknown-task", ["target.task=foo"], "target.task: unknown task 'foo'"),
    ("unknown-language", ["evaluation.languages=[xx]"], "evaluation.languages: pawsx has no data for xx"),
    (
        "wrong-columns",
        ["data.source=local", "data.data_dir={bad_columns}"],
        "pawsx/en/train.jsonl has no column 'sentence1'",
    ),
    ("missing-data-dir", ["data.source=local", "data.data_dir=/nonexistent"], "/nonexistent does not exist"),
    ("freeze-depth", ["target.freeze_depth=9"], "target.freeze_depth=9 is out of range"),
    (
        "intermediate-freeze-depth",
        ["intermediate.freeze_depth=3"],
        "intermediate.freeze_depth=3 is out of range",
    ),
    ("zero-stage", ["deepspeed.zero_stage=7"], "deepspeed.zero_stage must be 0, 1, 2 or 3, got 7"),
    (
        "retrieval-intermediate",
        ["target.task=bucc", "intermediate.tasks=[bucc]"],
        "intermediate.tasks: bucc is a retrieval task",
    ),
    (
        "retrieval-target-freeze",
        ["target.task=tatoeba", "target.freeze_depth=1"],
        "target.freeze_depth: tatoeba is a retrieval target and has no target phase",
    ),
    ("not-a-target", ["target.task=mnli"], "target.task: mnli is an intermediate task, not an XTREME target"),
    ("batch-size-0", ["target.batch_size=0"], "target.batch_size must be >= 1, got 0"),
    (
        "intermediate-batch-size-0",
        ["intermediate.batch_size=0"],
        "intermediate.batch_size must be >= 1, got 0",
    ),
    ("unknown-key", ["target.lr=0.1"], "unknown key target.lr"),
    ("bad-override", ["target.learning_rate"], "must look like key.sub=value"),
    ("bad-yaml", [], "not valid YAML"),
]


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and directory under ``root`` with its mtime and content (to prove nothing was written)."""
    found: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        content = path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(root))] = (path.stat().st_mtime_ns, content)
    return found


@pytest.fixture(scope="module")
def bad_columns(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local data dir: the miniature's QQP and PAWS-X, with ``sentence1`` renamed in PAWS-X's English train."""
    root = tmp_path_factory.mktemp("bad-columns")
    for task in ("qqp", "pawsx"):
        shutil.copytree(ensure_miniature(cache_dir / "data") / task, root / task)
    train = root / "pawsx" / "en" / "train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    train.write_text(
        "".join(
            json.dumps({"text1" if k == "sentence1" else k: v for k, v in row.items()}) + "\n" for row in rows
        )
    )
    return root


@pytest.mark.parametrize("existing", [False, True], ids=["fresh-output", "existing-output"])
@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_before_compute(
    overrides: list[str],
    message: str,
    existing: bool,
    bad_columns: Path,
    tiny_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output_dir = tmp_path / "out"
    config_path = tmp_path / "config.yaml"
    if message == "not valid YAML":
        config_path.write_text(f"output_dir: {output_dir}\ntarget: [pawsx\n  task: {{\n")
    else:
        tiny_config(output_dir, "pawsx", ["qqp"]).save(config_path)
    if existing:
        output_dir.mkdir()
        (output_dir / "keep.txt").write_text("from an earlier run\n")
    monkeypatch.chdir(tmp_path)  # relative paths (e.g. a default output_dir) would land in the snapshot too
    before = _tree(tmp_path)

    def no_compute(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("bad input reached run_transfer: it was not rejected before compute")

    monkeypatch.setattr(search.run, "run_transfer", no_compute)
    argv = ["run", "--config", str(config_path), "--backend", "local"]
    for override in overrides:
        argv += ["--set", override.format(bad_columns=bad_columns)]

    code = main(argv)

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, f"expected one error line, got:\n{captured.err}"
    assert lines[0].startswith("xstilts: error: "), lines[0]
    assert message in lines[0], lines[0]
    assert captured.out == ""
    assert _tree(tmp_path) == before  # nothing written: no output dir, the existing file untouched
    assert output_dir.exists() == existing
