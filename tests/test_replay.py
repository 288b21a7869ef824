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
    tmp_path: Path, space: dict[str, Any], slots: int = 1, **options: Any
) -> tuple[dict[str, Any], list[Any]]:
    """The grid of ``space`` written, then the real driver replaying ``space`` against it, ``slots`` trials at a
    time (one by default: the studies take turns)."""
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
        max_concurrent_trials=slots,
        replay=str(grid),
        **options,
    )
    return rows, run_search(search)


def _studies(tmp_path: Path, search: str = "replayed") -> dict[str, list[Any]]:
    """Each target's Optuna trials in the search's RDB (rejected repeats left out), in proposal order."""
    import optuna

    from search.layout import SearchLayout

    layout = SearchLayout(search, str(tmp_path / "storage"))
    storage = optuna.storages.RDBStorage(layout.optuna_url)
    found = {}
    for name in optuna.get_all_study_names(storage):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        kept = [t for t in trials if t.state != optuna.trial.TrialState.FAIL]
        found[name.split(".", 1)[1]] = sorted(kept, key=lambda t: t.number)
    return found


def _child_runs(tmp_path: Path, search: str = "replayed") -> list[Any]:
    """The search's trial runs in MLflow."""
    from mlflow.tracking import MlflowClient

    from trainers.keys import KIND_TAG, KIND_TRIAL

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"xstilts-{search}")
    assert experiment is not None
    return [
        run
        for run in client.search_runs([experiment.experiment_id], max_results=1000)
        if run.data.tags.get(KIND_TAG) == KIND_TRIAL
    ]


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


@pytest.mark.slow
def test_two_targets_studies_run_at_the_same_time(tmp_path: Path) -> None:
    """Two slots, two targets: each study runs a trial while the other's runs (their MLflow runs overlap),
    and neither study waits for the other to end. About a minute: a local Ray and the real driver, which
    is what runs studies side by side."""
    from trainers.keys import TARGET_TAG

    space = _space(samples=4, sampler_seed=0, scheduler={"type": "fifo"})
    space["targets"] = ["udpos", "panx"]
    _, outcomes = _replayed_search(tmp_path, space, slots=2)
    assert [(o.target, o.completed) for o in outcomes] == [("udpos", 4), ("panx", 4)]
    spans: dict[str, list[tuple[int, int]]] = {"udpos": [], "panx": []}
    for run in _child_runs(tmp_path):
        spans[run.data.tags[TARGET_TAG]].append((run.info.start_time, run.info.end_time))
    assert all(len(found) == 4 for found in spans.values())
    overlapping = [(u, p) for u in spans["udpos"] for p in spans["panx"] if u[0] < p[1] and p[0] < u[1]]
    assert overlapping, spans
    # One after the other, the first study would have ended before the second began.
    assert min(p[0] for p in spans["panx"]) < max(u[1] for u in spans["udpos"])
    assert min(u[0] for u in spans["udpos"]) < max(p[1] for p in spans["panx"])


@pytest.mark.slow
@pytest.mark.soak  # a local Ray and the real driver, about 30 s: CI runs test_concurrent_studies.py's fast cases
def test_each_study_starts_from_the_other_targets_leaders_as_they_appear(tmp_path: Path) -> None:
    """Warm start across concurrent targets (replayed, one slot: the studies take turns). Before each of its
    proposals panx reads udpos's study: udpos's best two finished intermediate settings that panx has not
    tried are enqueued and run first, and the same the other way round. About a minute (a local Ray)."""
    from search.searcher import FINISHED_ATTR, WARM_START_TOP, intermediate_part

    space = _space(samples=5, sampler_seed=0, scheduler={"type": "fifo"})
    space["targets"] = ["udpos", "panx"]
    space["points_to_evaluate"] = [{"intermediate_task": "none", "target.learning_rate": 1.0e-3}]
    _, outcomes = _replayed_search(tmp_path, space, warm_start=True)
    assert [o.completed for o in outcomes] == [5, 5]
    studies = _studies(tmp_path)
    taken = 0
    for target, other in (("udpos", "panx"), ("panx", "udpos")):
        queue = [intermediate_part(space["points_to_evaluate"][0])]
        seen = set(queue)
        for trial in studies[target]:
            done = [
                t
                for t in studies[other]
                if t.user_attrs.get(FINISHED_ATTR) and t.datetime_complete < trial.datetime_start
            ]
            leaders: list[Any] = []
            for t in sorted(done, key=lambda t: -t.value):
                if intermediate_part(t.params) not in leaders:
                    leaders.append(intermediate_part(t.params))
            for part in leaders[:WARM_START_TOP]:
                if part not in seen:
                    queue.append(part)
                    seen.add(part)
            if queue:  # what was enqueued runs first, in order
                assert intermediate_part(trial.params) == queue.pop(0), (target, trial.number)
                taken += 1
            seen.add(intermediate_part(trial.params))
    assert taken > 2  # more than the two seeded baselines came from the other study


@pytest.mark.slow
@pytest.mark.soak  # two replayed searches on a local Ray, about 50 s: CI runs the fast cases
def test_a_search_starts_from_an_earlier_search_s_best(tmp_path: Path) -> None:
    """``--warm-start SEARCH``: the new search's studies first run the earlier one's best configurations,
    then its leaders' intermediate settings (``search/warm_start.py``), before the space's own points.
    About a minute: two replayed searches, the second reading the first's RDB."""
    from search.layout import SearchLayout
    from search.space import space_from_dict
    from search.warm_start import earlier_points

    space = _space(samples=4, sampler_seed=0, scheduler={"type": "fifo"})
    space["targets"] = ["udpos", "panx"]
    _replayed_search(tmp_path, space, name="old")
    first = earlier_points(
        space_from_dict(space), ["udpos", "panx"], SearchLayout("old", str(tmp_path / "storage"))
    )
    assert all(len(points) >= 2 for points in first.values())
    _, outcomes = _replayed_search(tmp_path, space, name="new", warm_start_from="old")
    assert [o.completed for o in outcomes] == [4, 4]
    for target, trials in _studies(tmp_path, "new").items():
        expected = first[target][:4]
        for point, trial in zip(expected, trials, strict=False):
            assert {k: trial.params.get(k) for k in point} == point, (target, trial.number)


@pytest.mark.slow
@pytest.mark.soak  # a driver subprocess interrupted and resumed, about 45 s
def test_an_interrupted_concurrent_search_resumes_and_repeats_nothing(tmp_path: Path) -> None:
    """Ctrl-C while both studies run: one line, every study stopped as Tune stops on Ctrl-C; ``--resume``
    finishes both, and no trial that had completed runs again (the replay ledger, the MLflow runs).
    About 100 s: Ctrl-C must reach a driver process (a subprocess with its own Ray), then the resume."""
    import os
    import signal
    import time

    space = _space(samples=6, sampler_seed=0, scheduler={"type": "fifo"})
    space["targets"] = ["udpos", "panx"]
    grid = tmp_path / "grid.parquet"
    _write_grid(grid, space)
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "search.cli",
        "search",
        f"--space={space_file}",
        f"--storage={tmp_path / 'storage'}",
        f"--tracking-uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"--cache-root={tmp_path / 'cache' / 'intermediate'}",
        "--max-concurrent-trials=2",
        f"--replay={grid}",
    ]
    ledger = tmp_path / "cache" / LEDGER
    with (tmp_path / "out.txt").open("w") as out, (tmp_path / "err.txt").open("w") as errors:
        # Files, not pipes: the status tables would fill a pipe nobody reads while the ledger is watched.
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=errors, text=True)
        deadline = time.time() + 300
        while time.time() < deadline and child.poll() is None:
            try:
                if ledger.is_file() and sum(len(trials) for trials in _finished(ledger).values()) >= 3:
                    break
            except ValueError:
                pass  # a line being written
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGINT)
        child.wait(timeout=300)
    err = (tmp_path / "err.txt").read_text()
    assert child.returncode == 2, err[-3000:]
    # One line (Ray's log monitor may still print a stopped actor's lines after it).
    (line,) = [line for line in err.splitlines() if line.startswith("xstilts: error:")]
    assert line.startswith("xstilts: error: search 'replayed' was interrupted")
    assert line.endswith("continue it with --resume")
    before = _finished(ledger)
    assert 3 <= sum(len(trials) for trials in before.values()) < 12  # it stopped part way
    reports_before = len(ledger.read_text().splitlines())

    _, outcomes = _replayed_search(tmp_path, space, slots=2, resume=True)
    assert [(o.target, o.completed, o.trials) for o in outcomes] == [("udpos", 6, 6), ("panx", 6, 6)]
    after = ledger.read_text().splitlines()[reports_before:]
    rerun = {json.loads(line)["trial_id"] for line in after} & {
        t for trials in before.values() for t in trials
    }
    assert not rerun  # no completed trial ran again
    finished = _finished(ledger)
    for target, trials in finished.items():  # every configuration of the space once
        assert len(trials) == 6 and len(set(trials.values())) == 6, target
    runs = _child_runs(tmp_path)
    assert len(runs) == 12 and all(run.info.status == "FINISHED" for run in runs)


def _finished(ledger: Path) -> dict[str, dict[str, str]]:
    """Per target, the trials whose last report in the ledger is final: trial id -> cell."""
    found: dict[str, dict[str, str]] = {}
    for trial_id, report in _ledger(ledger.parent).items():
        if report.get("finished") == 1.0:
            found.setdefault(report["target"], {})[trial_id] = report["cell"]
    return found


@pytest.mark.slow
def test_the_driver_runs_each_configuration_once_and_ends_a_used_up_space(tmp_path: Path) -> None:
    """More samples than the 6 points of the space: each point runs once, then the study ends (search/searcher.py)."""
    space = _space(samples=10, sampler_seed=0, scheduler={"type": "fifo"})
    _, outcomes = _replayed_search(tmp_path, space)
    cells = [trial["cell"] for trial in _ledger(tmp_path / "cache").values()]
    assert outcomes[0].trials == 6 and outcomes[0].completed == 6
    assert sorted(cells) == sorted(set(cells)) and len(cells) == 6
