"""The search driver SIGKILLed at random points of a small search, each time resumed with ``--resume``.

After the last resume runs to the end: every trial has exactly one MLflow run with a final status, a
trial that had finished before a kill is not run again (its metrics do not change), and every result
Tune recorded is in MLflow exactly once (lost = 0, duplicated = 0), the journal carrying what a kill
interrupted.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from studies import search_command, tail, tiny_study, trial_runs

from search import tracking

pytestmark = [pytest.mark.slow, pytest.mark.soak]

KILLS = 2
"""Each kill costs a driver start (Ray, MLflow), most of this test's time. The first kill lands while the
first driver's trials run, the second in the resumed driver (its start-up or its trials)."""
SEED = 20261130
"""Seeds where (how many seconds after the trials start reporting) each kill lands."""


def _tune_results(storage: Path, name: str) -> list[tuple[str, dict[str, Any]]]:
    reported = []
    for path in sorted((storage / name / "udpos").glob("*/result.json")):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            reported.append((str(result["trial_id"]), result))
    return reported


def _metric_rows(uri: str, runs: list[Any]) -> Counter[tuple[str, str, int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rows: Counter[tuple[str, str, int, float]] = Counter()
    for run in runs:
        trial_id = run.data.tags[tracking.TRIAL_TAG]
        for key in run.data.metrics:
            for metric in client.get_metric_history(run.info.run_id, key):
                rows[(trial_id, key, metric.step, metric.value)] += 1
    return rows


def test_a_search_killed_at_random_points_logs_every_trial_once(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    space = tiny_study(
        tmp_path,
        cache_dir,
        name="kills",
        samples=5,
        target={"max_steps": 8, "eval_every": 2, "checkpoint_every": 4},
        scheduler={"type": "fifo"},
        languages=["en", "de"],
        # Each trial a Ray Train job: the kill points (seconds after the trials start reporting) are sized
        # to its pace. Trials that train in their own actors finish this study before the first kill lands;
        # a killed driver's resume with those is tests/test_search.py's resume test.
        worker_group="always",
    )
    storage = tmp_path / "storage"
    command = search_command(space, "kills", storage, uri, "--max-concurrent-trials", "1")
    log = tmp_path / "driver.log"
    kills: list[dict[str, Any]] = []
    finished_before: dict[str, dict[str, float]] = {}
    for attempt in range(KILLS + 1):
        argv = command if attempt == 0 else [*command, "--resume"]
        with log.open("a") as out:
            driver = subprocess.Popen(
                argv, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        if attempt == KILLS:
            assert driver.wait(timeout=1200) == 0, tail(log)
            break
        # A random point once this driver's trials are under way (it may land in a trial, between trials,
        # in a checkpoint or while MLflow is written).
        started = time.monotonic()
        while not _tune_results(storage, "kills") and driver.poll() is None:
            assert time.monotonic() - started < 600, tail(log)
            time.sleep(0.5)
        delay = rng.uniform(2.0, 30.0)
        time.sleep(delay)
        assert driver.poll() is None, (
            f"the search ended before kill {attempt + 1}: make it longer\n{tail(log)}"
        )
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
        done = [r for r in trial_runs(uri, "kills") if r.data.tags.get(tracking.STATUS_TAG) != "running"]
        for run in done:
            finished_before.setdefault(run.info.run_id, dict(run.data.metrics))
        kills.append({"after_s": round(delay, 1), "finished_trials": len(done)})

    runs = trial_runs(uri, "kills")
    reported = _tune_results(storage, "kills")
    trial_ids = [run.data.tags[tracking.TRIAL_TAG] for run in runs]
    expected: Counter[tuple[str, str, int, float]] = Counter()
    for trial_id, result in reported:
        for key, value in tracking.numeric_metrics(result).items():
            expected[(trial_id, key, int(result.get("target_step", 0)), value)] += 1
    stored = _metric_rows(uri, runs)
    lost, duplicated = sum((expected - stored).values()), sum((stored - expected).values())
    with capsys.disabled():
        print(
            f"\nkills {kills}; {len(runs)} trials, {len(reported)} results; lost {lost}, duplicated {duplicated}"
        )

    assert len(trial_ids) == len(set(trial_ids)) == 5  # one run per trial
    assert sorted(set(trial_ids)) == sorted({trial_id for trial_id, _ in reported})
    assert all(run.data.tags[tracking.STATUS_TAG] == "completed" for run in runs)
    assert (lost, duplicated) == (0, 0)
    by_id = {run.info.run_id: run for run in runs}
    for run_id, metrics in finished_before.items():  # finished before a kill: not run again
        assert by_id[run_id].data.metrics == metrics
