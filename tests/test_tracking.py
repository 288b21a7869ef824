"""How a search looks in MLflow: the experiment's kind, the link to its runs table, where searched params sort."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_search import FakeTrial, fresh_store, log_search
from servers import refusing_server

from search import tracking


def test_a_new_experiment_is_of_the_model_training_kind(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = fresh_store(tmp_path / "mlruns")
    experiment = tracking.experiment_id(uri, "xstilts-kind")
    tags = MlflowClient(tracking_uri=uri).get_experiment(experiment).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING == "custom_model_development"


def test_an_older_experiment_gets_the_kind_and_a_chosen_kind_stays(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = fresh_store(tmp_path / "mlruns")
    client = MlflowClient(tracking_uri=uri)
    untagged = client.create_experiment("xstilts-old")
    chosen = client.create_experiment("xstilts-chosen", tags={tracking.EXPERIMENT_KIND_TAG: "finetuning"})

    assert tracking.experiment_id(uri, "xstilts-old") == untagged
    assert tracking.experiment_id(uri, "xstilts-chosen") == chosen

    assert client.get_experiment(untagged).tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING
    assert client.get_experiment(chosen).tags[tracking.EXPERIMENT_KIND_TAG] == "finetuning"


def test_searched_params_head_the_ui_s_param_list(tmp_path: Path) -> None:
    """The UI lists param keys with JavaScript's default sort (code-point order): the searched ones come first."""
    from mlflow.tracking import MlflowClient

    uri = fresh_store(tmp_path / "mlruns")
    trial = FakeTrial("t0", "pawsx", intermediate="mnli", freeze_depth=1, learning_rate=2e-3)
    run_id = log_search(uri, "sorted", [trial])["t0"]
    params = MlflowClient(tracking_uri=uri).get_run(run_id).data.params

    searched = [key for key in params if key.startswith(tracking.SEARCHED_PREFIX)]
    assert sorted(params)[: len(searched)] == sorted(searched)
    assert {key.removeprefix(tracking.SEARCHED_PREFIX) for key in searched} == {
        "intermediate_task",
        "intermediate.learning_rate",
        "target.freeze_depth",
        "target.learning_rate",
        "target.task",
    }
    assert params[f"{tracking.SEARCHED_PREFIX}intermediate_task"] == "mnli"
    assert params["target.learning_rate"] == params[f"{tracking.SEARCHED_PREFIX}target.learning_rate"]


def test_a_store_that_refuses_the_experiment_is_one_tracking_error_line() -> None:
    with refusing_server() as url, pytest.raises(tracking.TrackingError) as refused:
        tracking.experiment_id(url, "xstilts-refused")
    assert str(refused.value).startswith(f"tracking store {url}: ")
    assert "401" in str(refused.value) and "\n" not in str(refused.value)


def _outcome(search: str) -> Any:
    best = {"trial_id": "t0", "config": {"intermediate_task": "none"}, "en_dev": 50.0}
    best |= {"zero_shot_avg": 40.0, "intermediate_reused": 0.0}
    return SimpleNamespace(
        search=search, target="udpos", trials=1, completed=1, early_stopped=0, failed=0, best=best
    )


def test_the_search_summary_links_the_experiment_s_runs_table(tmp_path: Path) -> None:
    from search.cli import search_summary

    uri = fresh_store(tmp_path / "mlruns")
    experiment = tracking.experiment_id(uri, "xstilts-linked")

    text = search_summary([_outcome("linked")], SimpleNamespace(tracking_uri=uri))

    link = f"http://127.0.0.1:5000/#/experiments/{experiment}?workflowType=machine_learning"
    assert link in text.splitlines()[-1]


def test_the_search_summary_creates_no_store(tmp_path: Path) -> None:
    from search.cli import search_summary

    missing = tmp_path / "nowhere" / "mlflow.db"
    text = search_summary([_outcome("gone")], SimpleNamespace(tracking_uri=f"sqlite:///{missing}"))

    assert "workflowType" not in text
    assert not missing.parent.exists()


def test_runs_of_a_killed_driver_s_trials_tune_never_snapshotted_are_deleted(tmp_path: Path) -> None:
    from fake_search import params_of
    from mlflow.tracking import MlflowClient

    uri = fresh_store(tmp_path)
    trials = [
        FakeTrial("kept", "udpos", status="running"),  # in Tune's snapshot: --resume continues it
        FakeTrial("done", "udpos"),  # in the snapshot, finished
        FakeTrial("lost", "udpos", status="running"),  # started after the snapshot: Tune replaces it
        FakeTrial("lost_done", "udpos", status="early_stopped"),  # even finished: the study never had it
        FakeTrial("other", "panx", status="running"),  # another target's study
    ]
    ids = log_search(uri, "s", trials)
    client = MlflowClient(tracking_uri=uri)
    kept = client.get_run(ids["kept"])
    tracker = tracking.TrialTracker(
        uri, kept.info.experiment_id, kept.data.tags["mlflow.parentRunId"], "s", "udpos", params_of
    )
    assert tracker.forget_lost({"kept", "done"}) == ["lost", "lost_done"]
    stages = {trial: client.get_run(run).info.lifecycle_stage for trial, run in ids.items()}
    assert stages == {
        "kept": "active",
        "done": "active",
        "lost": "deleted",
        "lost_done": "deleted",
        "other": "active",
    }
    assert tracker.forget_lost({"kept", "done"}) == []  # nothing left to delete
