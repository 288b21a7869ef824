"""Retrieval targets in a search: no study, one evaluation per encoder the search made, a table in select/report.

A space with a trained target (udpos) and Tatoeba: udpos gets its Optuna study; Tatoeba is evaluated once on
the base encoder and once on each distinct intermediate checkpoint udpos's trials used, each evaluation an
MLflow child run of the search; ``--resume`` evaluates nothing twice; ``select`` and ``report`` show the table.
The search is replayed against the recorded grid (cheap); the evaluation itself is checked on the worker's
real path on the tiny encoder (no intermediate training).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from studies import ROOT

from trainers import keys

GRID_FILE = ROOT / "benchmarks" / "grid" / "miniature_tiny.parquet"


def _space() -> dict[str, Any]:
    """udpos and tatoeba on the recorded grid's values: none or ccg (30 or 90 steps), two target lrs."""
    return {
        "name": "retrieval",
        "targets": ["udpos", "tatoeba"],
        "base": {
            "model": {"name_or_path": "tiny", "max_seq_length": 64, "doc_stride": 32},
            "intermediate": {"learning_rate": 1.0e-3},
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
            "target.learning_rate": {
                "type": "categorical",
                "choices": [1.0e-3, 3.0e-3],
                "when": {"target": {"not_in": ["tatoeba"]}},
            },
        },
        "points_to_evaluate": [  # the same checkpoint twice (reused), then another, then the baseline
            {"intermediate_task": "ccg", "intermediate.max_steps": 30, "target.learning_rate": 1.0e-3},
            {"intermediate_task": "ccg", "intermediate.max_steps": 30, "target.learning_rate": 3.0e-3},
            {"intermediate_task": "ccg", "intermediate.max_steps": 90, "target.learning_rate": 1.0e-3},
            {"intermediate_task": "none", "target.learning_rate": 1.0e-3},
        ],
        "tuner": {"num_samples": 4, "metric": "en_dev", "scheduler": {"type": "fifo"}, "sampler_seed": 0},
    }


def _options(root: Path, **extra: Any) -> Any:
    from search.tuner import SearchOptions

    space_file = root / "space.yaml"
    space_file.write_text(yaml.safe_dump(_space(), sort_keys=False))
    return SearchOptions(
        space=str(space_file),
        storage=str(root / "storage"),
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        cache_root=str(root / "cache" / "intermediate"),
        max_concurrent_trials=1,
        replay=str(GRID_FILE),
        **extra,
    )


def _runs(uri: str, kind: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("xstilts-retrieval")
    assert experiment is not None
    return list(
        client.search_runs([experiment.experiment_id], filter_string=f"tags.`{keys.KIND_TAG}` = '{kind}'")
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The space replayed once to its end, then resumed."""
    from search.tuner import run_search

    if not GRID_FILE.is_file():
        pytest.skip("no recorded grid (benchmarks/grid.py writes it)")
    root = tmp_path_factory.mktemp("retrieval")
    options = _options(root)
    first = run_search(options)
    runs = _runs(options.tracking_uri, keys.KIND_RETRIEVAL)
    resumed = run_search(_options(root, resume=True))
    return {"root": root, "options": options, "first": first, "runs": runs, "resumed": resumed}


@pytest.mark.slow
def test_tatoeba_is_evaluated_on_the_base_and_each_checkpoint_once(replayed: dict[str, Any]) -> None:
    """One run per distinct intermediate checkpoint udpos's trials used plus the base; no study, no trial."""
    import optuna

    from search.layout import SearchLayout
    from search.replay import load_grid
    from search.retrieval_eval import RetrievalOutcome
    from search.space import load_space
    from trainers.checkpoint_cache import intermediate_key

    options = replayed["options"]
    study, tatoeba = replayed["first"]
    assert study.target == "udpos" and study.completed == 4
    assert isinstance(tatoeba, RetrievalOutcome) and tatoeba.target == "tatoeba"
    assert tatoeba.evaluated == 3 and not tatoeba.failed and not tatoeba.missing

    trials = _runs(options.tracking_uri, keys.KIND_TRIAL)
    assert {run.data.tags[keys.TARGET_TAG] for run in trials} == {"udpos"}
    space = load_space(options.space)
    used = {
        intermediate_key(config)
        for config in (
            space.to_transfer_config({"intermediate_task": "ccg", "intermediate.max_steps": steps}, "udpos")
            for steps in (30, 90)
        )
    }
    runs = replayed["runs"]
    checkpoints = sorted(run.data.tags[keys.CHECKPOINT_TAG] for run in runs)
    assert checkpoints == sorted([keys.BASE_CHECKPOINT, *used])  # each once
    grid = load_grid(str(GRID_FILE))
    for run in runs:
        assert run.data.tags[keys.TARGET_TAG] == "tatoeba"
        assert run.data.tags[keys.STATUS_TAG] == keys.COMPLETED
        assert run.data.tags["mlflow.parentRunId"]
        steps = run.data.params.get("intermediate.max_steps", "None")
        name = "none" if steps == "None" else "ccg"
        row = grid[f"tatoeba|{name}|{0 if steps == 'None' else steps}|0|0.0003|0"]
        metrics = run.data.metrics
        assert metrics[keys.ZERO_SHOT_AVG] == row[keys.ZERO_SHOT_AVG]
        for lang, score in row["zero_shot"].items():
            if score is not None and not math.isnan(score):
                assert metrics[keys.ZERO_SHOT_LANG.format(lang=lang)] == score
        # Nothing was trained for it: an evaluation pays for its evaluation only.
        assert metrics[keys.COST_PHASE_GPU_S.format(phase="intermediate")] == 0.0
        assert metrics[keys.COST_GPU_S] == row["eval_s"]
        assert metrics[keys.INTERMEDIATE_REUSED] == float(name != "none")
    storage = optuna.storages.RDBStorage(SearchLayout("retrieval", options.storage).optuna_url)
    names = optuna.get_all_study_names(storage)
    assert "retrieval.udpos" in names and "retrieval.tatoeba" not in names


@pytest.mark.slow
def test_resume_evaluates_nothing_twice(replayed: dict[str, Any]) -> None:
    _, tatoeba = replayed["resumed"]
    assert (tatoeba.evaluated, tatoeba.already) == (0, 3)
    after = _runs(replayed["options"].tracking_uri, keys.KIND_RETRIEVAL)
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in replayed["runs"])


def test_an_evaluation_runs_the_worker_with_the_checkpoint_and_trains_nothing(
    tmp_path: Path, cache_dir: Path, tiny_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trials' per-worker function, given a published checkpoint: no intermediate phase, the cache untouched."""
    import shutil

    from search.retrieval_eval import Checkpoint, _run_evaluation, evaluation_plan
    from trainers import intermediate
    from trainers.checkpoint_cache import CheckpointCache, intermediate_key
    from trainers.encoders import resolve_encoder

    config = tiny_config(tmp_path / "eval", "tatoeba", ["ccg"], ["evaluation.languages=[de,ru]"])
    cache = CheckpointCache(tmp_path / "cache")
    key = intermediate_key(config)
    staging = cache.staging_dir(key)
    shutil.copytree(
        resolve_encoder("tiny", cache_dir), staging, dirs_exist_ok=True
    )  # stands in for a trained one
    path = cache.publish(staging, key, {"key_fields": "test"})
    before = sorted(p.name for p in cache.root.iterdir())

    def trains(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an evaluation trained an intermediate phase")

    monkeypatch.setattr(intermediate, "run", trains)
    plan = evaluation_plan(config, Checkpoint(key, "ccg", source=config, path=str(path)), str(cache.root))
    metrics = _run_evaluation(plan.to_dict(), "unused", str(tmp_path), 0)  # the Ray task's body, here
    assert metrics[keys.INTERMEDIATE_REUSED] == 1.0 and metrics[keys.FINISHED] == 1.0
    assert keys.TIME_PHASE_S.format(phase="intermediate") not in metrics
    assert {keys.ZERO_SHOT_LANG.format(lang=lang) for lang in ("de", "ru")} <= set(metrics)
    assert keys.ZERO_SHOT_AVG in metrics
    assert sorted(p.name for p in cache.root.iterdir()) == before  # no entry, staging or lease added
    # A checkpoint that is not published is never handed to the worker (it would be trained).
    with pytest.raises(ValueError, match="no published checkpoint"):
        evaluation_plan(config, Checkpoint(key, "ccg", source=config), str(cache.root))


@pytest.mark.slow
# The Ray Train variant takes three minutes: the soak tier runs it, CI the in-process one.
@pytest.mark.parametrize("worker_group", ["auto", pytest.param("always", marks=pytest.mark.soak)])
def test_a_real_search_evaluates_tatoeba_on_ray_without_training_for_it(
    tmp_path: Path, cache_dir: Path, worker_group: str
) -> None:
    """The tiny encoder, trials and evaluations on Ray: one ccg checkpoint trained by a udpos trial, reused by
    Tatoeba; an evaluation runs its one worker in its Ray task (``auto``) or as a Ray Train job (``always``)."""
    import subprocess

    from studies import driver_env, search_command, tiny_study

    space_path = tiny_study(
        tmp_path,
        cache_dir,
        name="real",
        samples=2,  # the seeded points: the baseline and ccg
        target={"max_steps": 4, "eval_every": 4},
        scheduler={"type": "fifo"},
        languages=["de", "ru"],
        worker_group=worker_group,
    )
    space = yaml.safe_load(space_path.read_text())
    space["targets"] = ["udpos", "tatoeba"]
    space["search"]["target.learning_rate"]["when"] = {"target": {"not_in": ["tatoeba"]}}
    space_path.write_text(yaml.safe_dump(space, sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = search_command(space_path, "real", tmp_path / "storage", uri)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=driver_env()
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tatoeba: retrieval target, no study: 2 encoders evaluated (2 now, 0 logged before)" in done.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("xstilts-real")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags[keys.KIND_TAG] == keys.KIND_TRIAL]
    evaluations = [r for r in runs if r.data.tags[keys.KIND_TAG] == keys.KIND_RETRIEVAL]
    assert {r.data.tags[keys.TARGET_TAG] for r in trials} == {"udpos"}
    ccg = [r for r in trials if r.data.params["_search.intermediate_task"] == "ccg"]
    entries = [p for p in (cache_dir / "intermediate").iterdir() if not p.name.startswith(".")]
    by_checkpoint = {r.data.tags[keys.CHECKPOINT_TAG]: r for r in evaluations}
    assert len(evaluations) == len(by_checkpoint) == 2 and keys.BASE_CHECKPOINT in by_checkpoint
    (key,) = set(by_checkpoint) - {keys.BASE_CHECKPOINT}
    assert key in {p.name for p in entries} and ccg
    for run in evaluations:
        metrics = run.data.metrics
        assert run.data.tags[keys.STATUS_TAG] == keys.COMPLETED and metrics[keys.FINISHED] == 1.0
        assert {keys.ZERO_SHOT_LANG.format(lang=lang) for lang in ("de", "ru")} <= set(metrics)
        assert keys.ZERO_SHOT_AVG in metrics
        assert keys.TIME_PHASE_S.format(phase="intermediate") not in metrics  # nothing trained for it
        assert metrics[keys.INTERMEDIATE_REUSED] == float(run is by_checkpoint[key])


@pytest.mark.slow
def test_select_and_report_show_the_table_and_select_nothing_for_it(
    replayed: dict[str, Any], tmp_path: Path
) -> None:
    from search.report import ReportOptions, report
    from search.select import RETRIEVAL_EVALUATED, SelectOptions, format_selection, select

    options = replayed["options"]
    selection = select(
        SelectOptions(search="retrieval", tracking_uri=options.tracking_uri, out=str(tmp_path / "best"))
    )
    assert [t.target for t in selection.targets] == ["udpos"]
    assert selection.not_selected == {"tatoeba": RETRIEVAL_EVALUATED}
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["udpos.yaml"]
    table = selection.retrieval["tatoeba"]
    assert len(table.rows) == 3 and table.rows[0].is_base
    base = table.rows[0].average
    assert base is not None
    output = format_selection(selection)
    assert f"tatoeba: NOT SELECTED: {RETRIEVAL_EVALUATED}" in output
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["encoder"])
    assert lines[header].split() == ["encoder", *table.languages, "avg", "gain"]
    rows = lines[header + 1 : header + 4]
    assert rows[0].startswith("  none (base encoder)") and rows[0].split()[-1] == f"{base:.2f}"
    for row, evaluation in zip(rows[1:], table.rows[1:], strict=True):
        assert row.strip().startswith(evaluation.label)
        assert evaluation.average is not None
        assert row.split()[-2:] == [f"{evaluation.average:.2f}", f"{evaluation.average - base:+.2f}"]

    done = report(
        ReportOptions(
            search="retrieval", out=str(tmp_path / "report"), tracking_uri=options.tracking_uri, log=False
        )
    )
    summary = (done.out / "summary.md").read_text()
    assert "## Retrieval targets" in summary
    assert "| none (base encoder) | " in summary and f"| {base:.2f} |  |" in summary
    assert done.heatmap.cols == ["udpos"]  # tatoeba is a table, not a column of the trials' views


@pytest.mark.slow
def test_a_search_of_retrieval_targets_alone_evaluates_the_base(tmp_path: Path) -> None:
    """No trained target: no study, no checkpoint; the base is evaluated, select and report show it."""
    from search.report import ReportOptions, report
    from search.select import RETRIEVAL_EVALUATED, SelectOptions, select
    from search.tuner import run_search

    if not GRID_FILE.is_file():
        pytest.skip("no recorded grid (benchmarks/grid.py writes it)")
    options = _options(tmp_path, targets=["tatoeba"])
    (outcome,) = run_search(options)
    assert (outcome.evaluated, list(outcome.scores)) == (1, ["none (base encoder)"])
    assert _runs(options.tracking_uri, keys.KIND_TRIAL) == []
    selection = select(
        SelectOptions(search="retrieval", tracking_uri=options.tracking_uri, out=str(tmp_path / "best"))
    )
    assert selection.targets == [] and selection.not_selected == {"tatoeba": RETRIEVAL_EVALUATED}
    assert not (tmp_path / "best").exists()
    done = report(
        ReportOptions(search="retrieval", out=str(tmp_path / "r"), tracking_uri=options.tracking_uri)
    )
    assert [p.name for p in done.files] == ["summary.md"]
    assert "| none (base encoder) | " in (tmp_path / "r" / "summary.md").read_text()


@pytest.mark.slow  # 12 s: a fresh MLflow store
def test_a_failed_evaluation_is_logged_and_resume_repeats_only_it(tmp_path: Path) -> None:
    """One encoder's failure leaves the others to run; the next run evaluates it again, into the same run."""
    from search import tracking
    from search.retrieval_eval import BASE_LABEL, Checkpoint, evaluate_checkpoints, sequential
    from search.space import space_from_dict

    space = space_from_dict(_space())
    source = space.to_transfer_config({"intermediate_task": "ccg", "intermediate.max_steps": 30}, "udpos")
    checkpoints = [Checkpoint(keys.BASE_CHECKPOINT, BASE_LABEL), Checkpoint("k30", "ccg", source=source)]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = tracking.experiment_id(uri, "xstilts-f")
    parent = tracking.parent_run(uri, experiment, "f", {})
    calls: list[tuple[str, int | None]] = []

    def evaluate(fail: bool) -> Any:
        def run(config: Any, checkpoint: Checkpoint) -> dict[str, Any]:
            steps = config.intermediate.max_steps if config.intermediate else None
            calls.append((checkpoint.key, steps))
            if fail and checkpoint.key == "k30":
                raise RuntimeError("worker died\nwith a traceback")
            return {keys.ZERO_SHOT_AVG: 50.0 + len(calls), keys.ZERO_SHOT_LANG.format(lang="de"): 40.0}

        return run

    def target(fail: bool) -> Any:
        (outcome,) = evaluate_checkpoints(
            uri,
            experiment,
            parent,
            "f",
            space,
            ["tatoeba"],
            checkpoints,
            tmp_path / "out",
            sequential(evaluate(fail)),
        )
        return outcome

    first = target(fail=True)
    assert (first.evaluated, first.failed, first.scores) == (1, ["ccg"], {BASE_LABEL: 51.0})
    failed = _runs_of(uri, experiment)
    assert failed["k30"].data.tags[keys.STATUS_TAG] == keys.FAILED
    assert failed["k30"].data.tags[keys.ERROR_TAG] == "RuntimeError: worker died"
    second = target(fail=False)
    assert (second.evaluated, second.already, second.failed) == (1, 1, [])
    assert calls == [(keys.BASE_CHECKPOINT, None), ("k30", 30), ("k30", 30)]  # the base ran once
    after = _runs_of(uri, experiment)
    assert {k: r.info.run_id for k, r in after.items()} == {k: r.info.run_id for k, r in failed.items()}
    assert after["k30"].data.tags[keys.STATUS_TAG] == keys.COMPLETED
    assert keys.ERROR_TAG not in after["k30"].data.tags
    assert after["k30"].data.params["intermediate.max_steps"] == "30"  # the checkpoint's config, logged once
    assert after["k30"].data.params["target.task"] == "tatoeba"


def _runs_of(uri: str, experiment: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracking_uri=uri).search_runs([experiment])
    kinds = [r for r in runs if r.data.tags.get(keys.KIND_TAG) == keys.KIND_RETRIEVAL]
    return {r.data.tags[keys.CHECKPOINT_TAG]: r for r in kinds}
