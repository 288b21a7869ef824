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
