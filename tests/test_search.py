"""End-to-end searches on the tiny encoder: Tune + Optuna + ASHA + Ray Train + MLflow + the checkpoint cache.

Two searches over one small space share a cache: the first trains intermediate checkpoints, the second
(killed mid-study and resumed) trains none, re-runs no finished trial and duplicates no MLflow run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from studies import search_command, tiny_study, trial_runs

from search.tracking import SEARCHED_PREFIX

SEARCHED_TASK = f"{SEARCHED_PREFIX}intermediate_task"

pytestmark = pytest.mark.slow

SAMPLES = 4


def space_file(directory: Path, cache_dir: Path) -> Path:
    """A 4-trial udpos study: none vs ccg as intermediate task, a fixed intermediate lr so keys repeat."""
    return tiny_study(
        directory,
        cache_dir,
        name="e2e",
        samples=SAMPLES,
        target={"max_steps": 8, "eval_every": 4},
        scheduler={"type": "asha", "grace_period": 4, "reduction_factor": 2, "max_t": 8},
        languages=["en", "de", "ru"],
    )


def cache_entries(cache_dir: Path) -> set[str]:
    """Published intermediate checkpoints."""
    root = cache_dir / "intermediate"
    return (
        {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
        if root.exists()
        else set()
    )


def _search_run(uri: str, name: str) -> Any:
    """The one parent run of search ``name``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"xstilts-{name}")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.`xstilts.kind` = 'search'")
    return run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run search A to completion (in a subprocess, as a user would)."""
    root = tmp_path_factory.mktemp("search")
    cache_dir = root / "cache"
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    space = space_file(root, cache_dir)
    storage = root / "storage"
    started = time.perf_counter()
    result = subprocess.run(
        search_command(space, "a", storage, uri), capture_output=True, text=True, timeout=900, cwd=root
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "root": root,
        "cache_dir": cache_dir,
        "uri": uri,
        "space": space,
        "storage": storage,
        "stdout": result.stdout,
        "seconds": time.perf_counter() - started,
        "entries": cache_entries(cache_dir),
    }


def test_search_logs_one_parent_and_a_child_per_trial(world: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    runs = trial_runs(world["uri"], "a")
    assert len(runs) == SAMPLES
    client = MlflowClient(tracking_uri=world["uri"])
    experiment = client.get_experiment_by_name("xstilts-a")
    assert experiment is not None
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`xstilts.kind` = 'search'")
    assert len(parents) == 1
    assert {run.data.tags["mlflow.parentRunId"] for run in runs} == {parents[0].info.run_id}
    # The search completed, so its run is no longer RUNNING.
    assert parents[0].info.status == "FINISHED" and parents[0].info.end_time is not None
    statuses = {run.data.tags["xstilts.status"] for run in runs}
    assert statuses <= {"completed", "early_stopped"} and "completed" in statuses
    for run in runs:
        assert run.data.params["target.task"] == "udpos"
        assert run.data.params[SEARCHED_TASK] in ("none", "ccg")
        assert "en_dev" in run.data.metrics
        if run.data.tags["xstilts.status"] == "completed":
            for lang in ("en", "de", "ru"):
                assert 0 <= run.data.metrics[f"zero_shot/{lang}"] <= 100
            assert run.data.metrics["finished"] == 1.0
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # The summary names the best trial per target and where to look.
    assert "udpos:" in world["stdout"] and "best trial" in world["stdout"] and "mlflow ui" in world["stdout"]


def test_first_search_trains_each_intermediate_key_once(world: dict[str, Any]) -> None:
    runs = trial_runs(world["uri"], "a")
    with_intermediate = [r for r in runs if r.data.params[SEARCHED_TASK] != "none"]
    # Every ccg trial shares one key (fixed intermediate settings): one checkpoint, however many trials.
    assert len(world["entries"]) == (1 if with_intermediate else 0)
    reused = [r.data.metrics.get("intermediate_reused") for r in with_intermediate]
    assert reused.count(0.0) <= 1


def test_bad_space_fails_before_any_trial(world: dict[str, Any], tmp_path: Path) -> None:
    bad = yaml.safe_load(world["space"].read_text())
    bad["search"]["target.learning_rate"]["low"] = 1.0  # inverted bounds
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    result = subprocess.run(
        search_command(path, "bad", tmp_path / "s", world["uri"]), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "target.learning_rate" in result.stderr
    assert not (tmp_path / "s").exists()


def test_resumed_second_search_reuses_reruns_nothing_and_duplicates_no_run(world: dict[str, Any]) -> None:
    # One trial at a time: a kill after the first finished trial lands before the last (trials that reuse
    # the cached intermediate take seconds, and two at once could all finish between two polls).
    command = search_command(
        world["space"], "b", world["storage"], world["uri"], "--max-concurrent-trials", "1"
    )
    driver = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=world["root"],
        start_new_session=True,
    )
    try:
        deadline = time.time() + 600
        # Kill the driver (and the Ray instance it started) once a trial has finished but not all.
        while time.time() < deadline:
            finished = [
                r for r in trial_runs(world["uri"], "b") if r.data.tags.get("xstilts.status") != "running"
            ]
            if finished or driver.poll() is not None:
                break
            time.sleep(1)
        assert driver.poll() is None, "the search ended before it could be interrupted"
        assert finished, "no trial finished in time"
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    before = {r.info.run_id: r for r in trial_runs(world["uri"], "b")}
    assert _search_run(world["uri"], "b").info.status == "RUNNING"  # SIGKILL: nothing could end it
    done_before = {rid for rid, r in before.items() if r.data.tags.get("xstilts.status") != "running"}
    assert 0 < len(done_before) < SAMPLES

    resumed = subprocess.run(
        [*command, "--resume"], capture_output=True, text=True, timeout=900, cwd=world["root"]
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=world["uri"])
    parent = _search_run(world["uri"], "b")  # the same run, re-opened by --resume and ended again
    assert parent.info.status == "FINISHED" and parent.info.end_time is not None
    after = trial_runs(world["uri"], "b")
    assert {r.data.tags["mlflow.parentRunId"] for r in after} == {parent.info.run_id}
    assert len(after) == SAMPLES  # no duplicate runs
    assert len({r.data.tags["xstilts.trial_id"] for r in after}) == SAMPLES
    assert {r.data.tags["xstilts.status"] for r in after} <= {"completed", "early_stopped"}
    for run_id in done_before:  # finished before the kill: not run again, so nothing new was logged
        assert before[run_id].data.metrics == client.get_run(run_id).data.metrics
        assert len(client.get_metric_history(run_id, "finished")) <= 1
    # Same space and seed as search A: its intermediate checkpoint is reused, none is trained.
    assert cache_entries(world["cache_dir"]) == world["entries"]
    for run in after:
        if run.data.params[SEARCHED_TASK] != "none":
            assert run.data.metrics["intermediate_reused"] == 1.0
