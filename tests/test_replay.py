"""Replaying searches against a recorded grid: the cell contract, the space check, the real driver replayed.

The search benchmark (``benchmarks/search_efficiency.py``) is only as honest as its replay: a replayed
trial must report exactly what the grid recorded for its configuration, and charge an intermediate
phase only when no trial trained it before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from studies import ROOT

from search.replay import LEDGER, ReplayError, cell_key, check_space, space_points
from search.space import space_from_dict

sys.path.insert(0, str(ROOT / "benchmarks"))
import grid as recorded

GRID_FILE = ROOT / "benchmarks" / "grid" / "miniature_tiny.parquet"


def _space(samples: int = 4, **tuner: Any) -> dict[str, Any]:
    return {
        "name": "replayed",
        "targets": ["udpos"],
        "base": {
            "model": {"name_or_path": "tiny"},
            "intermediate": {"learning_rate": recorded.INTERMEDIATE_LR},
            "target": {"max_steps": 40, "eval_every": 10},
            "seed": 0,
        },
        "search": {
            "intermediate_task": {"type": "categorical", "choices": ["none", "ccg"]},
            "intermediate.max_steps": {
                "type": "categorical",
                "choices": [30, 90],
                "when": {"intermediate_task": {"not": "none"}},
            },
            "target.learning_rate": {"type": "categorical", "choices": [1.0e-3, 3.0e-3]},
        },
        "tuner": {"num_samples": samples, "metric": "en_dev", "mode": "max", **tuner},
    }


def _write_grid(path: Path, space: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A grid with one row per configuration of ``space``: distinct scores, an intermediate cost of 5 s."""
    import pandas as pd

    loaded = space_from_dict(space)
    rows = {}
    points = [(t, p) for t in loaded.targets for p in space_points(loaded, t)]
    for index, (target, point) in enumerate(points):
        config = loaded.to_transfer_config(point, target)
        inter = config.intermediate
        score = 50.0 + index
        rows[cell_key(config)] = {
            "cell": cell_key(config),
            "target": target,
            "curve_step": [10, 20, 30, 40],
            "curve_en_dev": [score - 3, score - 2, score - 1, score],
            "curve_target_dev": [score - 13, score - 12, score - 11, score - 10],
            "curve_s": [0.5, 1.0, 1.5, 2.0],
            "en_dev": score,
            "target_dev_avg_non_en": score - 10,
            "zero_shot_avg": score - 5,
            "zero_shot": {"en": score, "de": score - 10},
            "intermediate_key": f"key-{inter.max_steps}" if inter else "",
            "intermediate_steps": int(inter.max_steps or 0) if inter else 0,
            "intermediate_s": 5.0 if inter else 0.0,
            "target_steps": 40,
            "target_s": 2.0,
            "eval_s": 0.25,
        }
    pd.DataFrame(list(rows.values())).to_parquet(path, index=False)
    return rows


def test_cell_key_is_the_recorded_grids_key(tmp_path: Path) -> None:
    """The replay finds a trial's row by the same key the generator wrote it under."""
    cells = recorded.cells(("udpos", "tatoeba"), (1,))
    for cell in (cells[0], cells[-1], *[c for c in cells if len(c.intermediate) == 2][:1]):
        config = recorded.config_for(cell, str(tmp_path), str(tmp_path / "out"))
        assert cell_key(config) == cell.key


def test_space_points_follow_the_conditions() -> None:
    """Every point a study can suggest: the step count only with an intermediate task."""
    points = space_points(space_from_dict(_space()), "udpos")
    assert len(points) == (1 + 2) * 2
    assert {"intermediate_task": "none", "target.learning_rate": 1.0e-3} in points
    assert all(("intermediate.max_steps" in p) == (p["intermediate_task"] != "none") for p in points)


def test_continuous_parameters_cannot_be_replayed() -> None:
    space = _space()
    space["search"]["target.learning_rate"] = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    with pytest.raises(ReplayError, match=r"target\.learning_rate is continuous"):
        space_points(space_from_dict(space), "udpos")


def test_a_space_off_the_grid_is_one_line(tmp_path: Path) -> None:
    grid = tmp_path / "grid.parquet"
    _write_grid(grid, _space())
    check_space(space_from_dict(_space()), str(grid))  # on the grid: no error
    wider = _space()
    wider["search"]["target.learning_rate"]["choices"].append(1.0e-2)
    with pytest.raises(ReplayError, match=r"no cell udpos\|none\|0\|0\|0\.01\|0"):
        check_space(space_from_dict(wider), str(grid))


def _replayed_search(
    tmp_path: Path, space: dict[str, Any], **options: Any
) -> tuple[dict[str, Any], list[Any]]:
    """The grid of ``space`` written, then the real driver replaying ``space`` against it, one trial at a time."""
    from search.tuner import SearchOptions, run_search

    grid = tmp_path / "grid.parquet"
    rows = _write_grid(grid, space)
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    search = SearchOptions(
        space=str(space_file),
        storage=str(tmp_path / "storage"),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        cache_root=str(tmp_path / "cache" / "intermediate"),
        max_concurrent_trials=1,
        replay=str(grid),
        **options,
    )
    return rows, run_search(search)


def _ledger(directory: Path) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for line in (directory / LEDGER).read_text().splitlines():
        report = json.loads(line)
        last[report["trial_id"]] = {**last.get(report["trial_id"], {}), **report}
    return last


@pytest.mark.slow
@pytest.mark.parametrize("reuse", [True, False])
def test_replayed_search_reports_the_grid_and_prices_reuse(tmp_path: Path, reuse: bool) -> None:
    """The real driver, trials answered from the grid: each reports its row; intermediates are priced."""
    space = _space(samples=6, sampler_seed=0, scheduler={"type": "fifo"})
    space["points_to_evaluate"] = [  # one intermediate configuration twice, then another
        {"intermediate_task": "ccg", "intermediate.max_steps": steps, "target.learning_rate": lr}
        for steps, lr in ((30, 1.0e-3), (30, 3.0e-3), (90, 1.0e-3))
    ]
    rows, outcomes = _replayed_search(tmp_path, space, reuse_intermediate=reuse)
    assert outcomes[0].completed == 6 and outcomes[0].failed == 0
    trials = list(_ledger(tmp_path / "cache").values())
    assert len(trials) == 6
    seeded = trials[:3]  # trials ran one at a time, in order: the seeded points first
    for trial in trials:
        row = rows[trial["cell"]]
        assert (trial["en_dev"], trial["zero_shot_avg"]) == (row["en_dev"], row["zero_shot_avg"])
        assert trial["target_dev_avg_non_en"] == row["target_dev_avg_non_en"]
        assert trial["cost/target_gpu_s"] == row["target_s"] + row["eval_s"]
        assert trial["cost/gpu_s"] == trial["cost/intermediate_gpu_s"] + trial["cost/target_gpu_s"]
    assert [t["cell"] for t in seeded] == [
        "udpos|ccg|30|0|0.001|0",
        "udpos|ccg|30|0|0.003|0",
        "udpos|ccg|90|0|0.001|0",
    ]
    charged = [t["cost/intermediate_gpu_s"] for t in seeded]
    published = [p for p in (tmp_path / "cache" / "intermediate").glob("*/meta.json")]
    if reuse:  # the first trains it and publishes it to the real cache, the second reuses it
        assert charged == [5.0, 0.0, 5.0]
        assert [t["intermediate_reused"] for t in seeded] == [0.0, 1.0, 0.0]
        trained = {t["cell"].split("|")[2] for t in trials if t["cost/intermediate_gpu_s"] > 0}
        assert len(published) == len(trained)
    else:  # every trial with an intermediate phase pays for its own; nothing is published
        assert charged == [5.0, 5.0, 5.0]
        assert published == []


@pytest.mark.slow
@pytest.mark.skipif(not GRID_FILE.is_file(), reason="no recorded grid (benchmarks/grid.py writes it)")
def test_search_efficiency_smoke(tmp_path: Path) -> None:
    """One replayed xstilts search on a slice of the recorded grid, beside the grid and random search."""
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "search_efficiency.py"),
        f"--grid={GRID_FILE}",
        "--seeds=1",
        "--samples=4",
        "--targets=udpos",
        "--methods",
        "grid",
        "random",
        "xstilts",
        f"--plot={tmp_path / 'plot.png'}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("| xstilts | udpos |") for line in lines)
    result = lines[-1].split()
    assert result[0] == "RESULT" and result[1].startswith("xstilts_vs_grid=")
    assert float(lines[-1].split("random_vs_grid=")[1]) > 0
    assert (tmp_path / "plot.png").stat().st_size > 0


@pytest.mark.slow
def test_grid_generator_smoke(tmp_path: Path, cache_dir: Path, child_env: dict[str, str]) -> None:
    """Two real cells through the generator: learning curves, finals and phase costs are recorded."""
    import pandas as pd

    out = tmp_path / "grid.parquet"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "grid.py"),
        "--smoke",
        f"--out={out}",
        f"--cache-dir={cache_dir}",
        "--targets=udpos",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=child_env)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_parquet(out)
    assert list(frame["intermediate"]) == ["none", "ccg"]
    for row in frame.to_dict(orient="records"):
        assert list(row["curve_step"]) == [10, 20, 30, 40]
        assert row["curve_en_dev"][-1] == pytest.approx(row["en_dev"])
        assert set(row["zero_shot"]) >= {"en", "de"} and row["target_s"] > 0
    none, ccg = frame.to_dict(orient="records")
    assert none["intermediate_s"] == 0 and none["intermediate_key"] == ""
    assert ccg["intermediate_s"] > 0 and ccg["intermediate_steps"] == recorded.INTERMEDIATE_STEPS[0]


def test_cli_replay_without_a_grid_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing grid file is refused before Ray, MLflow or anything else starts (runs/, mlruns/ stay unmade)."""
    from search.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["search", "--replay", str(tmp_path / "nope.parquet"), "--name", "r"]) == 2
    assert not any(tmp_path.iterdir())


def test_leaders_are_the_best_distinct_intermediate_settings() -> None:
    from types import SimpleNamespace

    from search.tuner import _leaders

    def trial(task: str, steps: int | None, score: float, lr: float) -> tuple[Any, dict[str, Any]]:
        config = {"intermediate_task": task, "target.learning_rate": lr}
        if steps is not None:
            config["intermediate.max_steps"] = steps
        return SimpleNamespace(config=config), {"en_dev": score}

    completed = [
        trial("ccg", 30, 80.0, 1e-3),
        trial("mnli", 90, 95.0, 1e-3),
        trial("mnli", 90, 90.0, 3e-3),  # the same intermediate settings as the best: not repeated
        trial("none", None, 85.0, 1e-3),
    ]
    assert _leaders(completed, "en_dev", "max") == [
        {"intermediate_task": "mnli", "intermediate.max_steps": 90},
        {"intermediate_task": "none"},
    ]
    assert _leaders(completed, "en_dev", "min")[0] == {
        "intermediate_task": "ccg",
        "intermediate.max_steps": 30,
    }


@pytest.mark.slow
def test_a_later_target_starts_from_the_earlier_targets_best_intermediate(tmp_path: Path) -> None:
    """Warm start across targets, on the real driver (replayed): panx first tries udpos's best intermediate."""
    space = _space(samples=4, sampler_seed=0, scheduler={"type": "fifo"})
    space["targets"] = ["udpos", "panx"]
    space["points_to_evaluate"] = [{"intermediate_task": "none", "target.learning_rate": 1.0e-3}]
    rows, outcomes = _replayed_search(tmp_path, space, warm_start=True)
    udpos, panx = outcomes
    assert panx.completed == 4
    assert udpos.leaders  # what panx starts from
    trials = list(_ledger(tmp_path / "cache").values())
    panx_cells = [t["cell"] for t in trials if t["target"] == "panx"]
    # After its own seeded baseline, panx's next trials are udpos's leaders (the sampler fills the rest).
    for leader, cell in zip(udpos.leaders, panx_cells[1:], strict=False):
        task, steps = cell.split("|")[1:3]
        assert leader["intermediate_task"] == task
        assert leader.get("intermediate.max_steps", 0) == int(steps)
    assert all(rows[c]["target"] == "panx" for c in panx_cells)


@pytest.mark.slow
def test_the_driver_runs_each_configuration_once_and_ends_a_used_up_space(tmp_path: Path) -> None:
    """More samples than the 6 points of the space: each point runs once, then the study ends (search/searcher.py)."""
    space = _space(samples=10, sampler_seed=0, scheduler={"type": "fifo"})
    _, outcomes = _replayed_search(tmp_path, space)
    cells = [trial["cell"] for trial in _ledger(tmp_path / "cache").values()]
    assert outcomes[0].trials == 6 and outcomes[0].completed == 6
    assert sorted(cells) == sorted(set(cells)) and len(cells) == 6
