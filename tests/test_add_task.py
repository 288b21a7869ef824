"""Adding an intermediate task of an existing type: one ``TaskSpec`` entry and its data files, nothing else.

The recipe of docs/adding-a-task.md, end to end: the entry (``register_task``, what one entry in
``trainers/tasks/intermediate.py`` does), files in the local layout (``<data_dir>/<task>/en/{train,dev}.jsonl``
in the task's own column names), and ``xstilts run`` with the task as the intermediate task, on the tiny
encoder for a few steps. No generator, no type module, no test fixture, no other file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import base_config

from trainers.data.miniature import ensure_miniature
from trainers.tasks import TASKS, TaskSpec, TaskType, get_task, register_task
from trainers.worker import RESULTS_FILE

REPO = Path(__file__).resolve().parents[1]

NEW_TASK = TaskSpec(
    name="rte_local",
    type=TaskType.PAIR_CLASSIFICATION,
    hub=None,
    columns={"text_a": "sentence1", "text_b": "sentence2", "label": "label"},
    label_names=("entailment", "not_entailment"),
    role="intermediate",
    description="Recognising textual entailment, from local files (two-way NLI).",
    train_size=64,  # the examples in its English train file (the cost model of --dry-run reads it)
)
"""The one entry: an intermediate task of an existing type (pair classification), read from local files."""


@pytest.fixture
def registered() -> Iterator[TaskSpec]:
    """``NEW_TASK`` in the registry for one test, then the registry as it was."""
    before = dict(TASKS)
    try:
        yield register_task(NEW_TASK)
    finally:
        TASKS.clear()
        TASKS.update(before)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _task_files(data_dir: Path, cache_dir: Path) -> None:
    """The new task's files in its own schema (two-way labels as strings, from the miniature's NLI pairs),
    and the target's files copied beside them: ``data.source: local`` reads every task from one directory."""
    view = ensure_miniature(cache_dir / "data")
    for split, n in (("train", 64), ("dev", 24)):
        lines = (view / "mnli" / "en" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        rows = [json.loads(line) for line in lines]
        _write_jsonl(
            data_dir / NEW_TASK.name / "en" / f"{split}.jsonl",
            [
                {
                    "sentence1": row["premise"],
                    "sentence2": row["hypothesis"],
                    "label": "entailment" if row["label"] == 0 else "not_entailment",
                }
                for row in rows
            ],
        )
    shutil.copytree(view / "pawsx", data_dir / "pawsx")


def test_the_entry_is_in_the_registry(registered: TaskSpec) -> None:
    assert get_task("rte_local") is registered
    with pytest.raises(ValueError, match="already registered"):
        register_task(NEW_TASK)


def test_a_new_intermediate_task_runs_through_xstilts_run(
    registered: TaskSpec, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.cli import main

    data_dir = tmp_path / "data"
    _task_files(data_dir, cache_dir)
    config = base_config(cache_dir, tmp_path / "run", "pawsx", [NEW_TASK.name])
    config["data"].update({"source": "local", "data_dir": str(data_dir)})
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")

    assert main(["run", "--config", str(config_file), "--backend", "local"]) == 0

    results = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert results["finished"] == 1.0
    assert results["intermediate_reused"] == 0.0
    assert results["intermediate/step"] == 3
    scores = {k: v for k, v in results.items() if k.startswith("intermediate/rte_local/en_dev/")}
    assert scores and all(0.0 <= v <= 100.0 for v in scores.values())
    assert {k.split("/")[1] for k in results if k.startswith("zero_shot/")} == {"en", "de", "es"}
    assert "pawsx" in capsys.readouterr().out  # the scores table


def test_the_new_task_on_the_miniature_is_one_line_before_any_compute(
    registered: TaskSpec, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.cli import main

    config = base_config(cache_dir, tmp_path / "run", "pawsx", [NEW_TASK.name])  # data.source: miniature
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")

    assert main(["run", "--config", str(config_file), "--backend", "local"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("xstilts: error: data.source=miniature: no miniature")
    assert "rte_local" in error[0]
    assert not (tmp_path / "run").exists()


PLUGIN = """
from trainers.tasks import TaskSpec, TaskType, register_task

register_task(
    TaskSpec(
        name="rte_plugin",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=None,
        columns={"text_a": "sentence1", "text_b": "sentence2", "label": "label"},
        label_names=("entailment", "not_entailment"),
        role="intermediate",
        description="A task registered from outside the repository.",
        train_size=64,
    )
)
"""


def _xstilts(tmp_path: Path, modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``xstilts ARGS`` in a fresh process with ``XSTILTS_TASK_MODULES=modules``, ``tmp_path`` importable."""
    env = dict(os.environ, XSTILTS_TASK_MODULES=modules)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_task_module_named_in_the_environment_registers_its_tasks_in_every_process(tmp_path: Path) -> None:
    (tmp_path / "my_tasks.py").write_text(PLUGIN, encoding="utf-8")
    done = _xstilts(tmp_path, "my_tasks", "tasks")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[:2] for line in done.stdout.splitlines() if line.startswith("rte_plugin")]
    assert listed == [["rte_plugin", "intermediate"]]


def test_a_task_module_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    done = _xstilts(tmp_path, "no_such_tasks_module", "tasks")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "xstilts: error: XSTILTS_TASK_MODULES: cannot import 'no_such_tasks_module' "
        "(No module named 'no_such_tasks_module')"
    ]
