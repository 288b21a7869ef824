"""The tracking server goes away mid-search: the driver buffers on disk, keeps going, and replays in order.

A real MLflow server (``mlflow/start_local.sh``) is stopped while trials report, the driver is "killed"
during the outage (its callback pickled as Tune keeps it, the in-memory copy dropped), the server comes
back on the same store, and a new driver replays the journal. Every reported metric must then be in
MLflow exactly once: lost = 0, duplicated = 0, one run per trial with its final status. The journal is
then replayed a second time from the start (as after a crash between applying and recording it): the
finished trials' runs take nothing more, the running one's metrics are logged again with the same
timestamps, and MLflow still holds each once.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fake_search import FakeTrial, params_of, point
from servers import free_port, server

from search import tracking
from search.outbox import BufferedTracker

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
START_LOCAL = REPO / "mlflow" / "start_local.sh"


class Trial:
    """The attributes of a Tune trial the trackers read."""

    def __init__(self, trial_id: str, config: dict[str, Any]) -> None:
        self.trial_id = trial_id
        self.config = config
        self.last_result: dict[str, Any] = {}


def _result(step: int, en_dev: float, finished: bool = False) -> dict[str, Any]:
    result = {
        "target_step": step,
        "en_dev": en_dev,
        "target/loss": 1.0 / (step + 1),
        "timestamp": time.time(),
    }
    if finished:
        result["finished"] = 1.0
    return result


def _report(
    tracker: BufferedTracker, trial: Trial, result: dict[str, Any], sent: list[tuple[str, dict]]
) -> None:
    tracker.on_trial_result(0, [], trial, result)
    trial.last_result = result
    sent.append((trial.trial_id, result))
    tracker.on_step_begin(0, [])  # Tune's loop turns between results


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


def _lost_and_duplicated(uri: str, run_ids: dict[str, str], sent: list[tuple[str, dict]]) -> tuple[int, int]:
    """Reported (key, step, value) rows missing from MLflow, and rows MLflow holds more than once."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    expected: Counter[tuple[str, str, int, float]] = Counter()
    for trial_id, result in sent:
        for key, value in tracking.numeric_metrics(result).items():
            expected[(trial_id, key, int(result["target_step"]), value)] += 1
    stored: Counter[tuple[str, str, int, float]] = Counter()
    for trial_id, run_id in run_ids.items():
        for key in {key for (tid, key, _, _) in expected if tid == trial_id}:
            for metric in client.get_metric_history(run_id, key):
                stored[(trial_id, key, metric.step, metric.value)] += 1
    lost = sum((expected - stored).values())
    duplicated = sum((stored - expected).values())
    return lost, duplicated


def test_an_outage_and_a_driver_crash_lose_and_duplicate_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    args = ["--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"]
    args += ["--artifacts-destination", str(tmp_path / "store" / "artifacts")]
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # BufferedTracker's own settings apply
    journal = tmp_path / "driver" / "udpos.jsonl"
    trials = [
        Trial(f"t{i}", point(FakeTrial(f"t{i}", "udpos", intermediate=task)))
        for i, task in enumerate(("none", "ccg", "none", "ccg"))
    ]
    sent: list[tuple[str, dict]] = []

    with server(START_LOCAL, args, _server_env(), tmp_path, uri):
        experiment = tracking.experiment_id(uri, "xstilts-outage")
        parent = tracking.parent_run(uri, experiment, "outage", {"space": "x.yaml"})
        inner = tracking.TrialTracker(uri, experiment, parent, "outage", "udpos", params_of)
        tracker = BufferedTracker(inner, journal, final_wait_s=0)
        tracker.setup()
        tracker.on_trial_start(0, [], trials[0])
        _report(tracker, trials[0], _result(0, 10.0), sent)
        _report(tracker, trials[0], _result(10, 20.0), sent)
        assert tracker.outbox.pending() == 0
    # The server is down: trial 0 finishes, trial 1 runs whole, trial 2 starts and fails.
    outage_started = time.monotonic()
    _report(tracker, trials[0], _result(20, 30.0, finished=True), sent)
    tracker.on_trial_complete(0, [], trials[0])
    tracker.on_trial_start(0, [], trials[1])
    for step, score in ((0, 5.0), (10, 15.0), (20, 25.0)):
        _report(tracker, trials[1], _result(step, score), sent)
    tracker.on_trial_complete(0, [], trials[1])  # stopped early: no finished flag
    tracker.on_trial_start(0, [], trials[2])
    _report(tracker, trials[2], _result(0, 1.0), sent)
    tracker.on_trial_error(0, [], trials[2])
    tracker.on_trial_start(0, [], trials[3])  # still running when the driver dies
    _report(tracker, trials[3], _result(0, 2.0), sent)
    _report(tracker, trials[3], _result(10, 12.0), sent)
    buffered = tracker.outbox.pending()
    assert buffered >= 10, buffered
    tracker.on_experiment_end([])  # final_wait_s=0: gives up at once and keeps the journal
    # The driver dies; Tune's pickled callback is all a --resume has (the journal is on disk).
    saved = pickle.dumps(tracker)
    del tracker, inner
    shutil.copyfile(journal, tmp_path / "journal-copy.jsonl")

    with server(START_LOCAL, args, _server_env(), tmp_path, uri):
        outage_s = time.monotonic() - outage_started
        resumed: BufferedTracker = pickle.loads(saved)
        resumed.setup()  # replays the previous driver's journal
        assert resumed.outbox.pending() == 0
        run_ids = dict(resumed.run_ids)
        lost, duplicated = _lost_and_duplicated(uri, run_ids, sent)

        # As if the driver had died after applying but before recording it: everything replays again.
        shutil.copyfile(tmp_path / "journal-copy.jsonl", journal)
        resumed.outbox.applied_path.unlink()
        again: BufferedTracker = pickle.loads(saved)
        again.setup()
        assert again.outbox.pending() == 0
        lost_again, duplicated_again = _lost_and_duplicated(uri, run_ids, sent)

        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs([experiment], filter_string="tags.`xstilts.kind` = 'trial'")
        statuses = {run.data.tags[tracking.TRIAL_TAG]: run.data.tags[tracking.STATUS_TAG] for run in runs}
        params = {run.data.tags[tracking.TRIAL_TAG]: run.data.params for run in runs}
    print(f"outage {outage_s:.1f} s, {buffered} writes buffered; lost {lost}, duplicated {duplicated}")
    assert (lost, duplicated) == (0, 0)
    assert (lost_again, duplicated_again) == (0, 0)
    assert len(runs) == 4  # one run per trial, none created twice
    assert statuses == {"t0": "completed", "t1": "early_stopped", "t2": "failed", "t3": "running"}
    assert params["t1"][f"{tracking.SEARCHED_PREFIX}intermediate_task"] == "ccg"  # described in the outage


def test_a_run_created_just_before_the_outage_is_described_by_the_replay(tmp_path: Path) -> None:
    """The server took create_run and went away before the params: the replay finds the run and finishes it."""
    from fake_search import fresh_store
    from mlflow.tracking import MlflowClient

    uri = fresh_store(tmp_path / "mlruns")
    experiment = tracking.experiment_id(uri, "xstilts-cut")
    parent = tracking.parent_run(uri, experiment, "cut", {})
    client = MlflowClient(tracking_uri=uri)
    client.create_run(
        experiment,
        tags={tracking.SEARCH_TAG: "cut", tracking.TRIAL_TAG: "t0", tracking.KIND_TAG: "trial"},
    )
    tracker = BufferedTracker(
        tracking.TrialTracker(uri, experiment, parent, "cut", "udpos", params_of), tmp_path / "j.jsonl"
    )
    trial = Trial("t0", point(FakeTrial("t0", "udpos", intermediate="ccg")))

    tracker.on_trial_start(0, [], trial)

    runs = client.search_runs([experiment], filter_string="tags.`xstilts.trial_id` = 't0'")
    assert len(runs) == 1
    assert runs[0].data.params[f"{tracking.SEARCHED_PREFIX}intermediate_task"] == "ccg"
    assert [a.path for a in client.list_artifacts(runs[0].info.run_id)] == ["config.yaml"]


OUTAGE_S = 60.0
"""How long the server stays down in the end-to-end search."""


def _tune_results(storage: Path, name: str) -> list[tuple[str, dict]]:
    """(trial id, result) of every result Tune recorded (its result.json files): what was reported."""
    import json

    reported = []
    for path in sorted((storage / name / "udpos").glob("*/result.json")):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            reported.append((str(result["trial_id"]), result))
    return reported


@pytest.mark.soak
def test_a_search_rides_out_a_60_s_tracking_outage(tmp_path: Path, cache_dir: Path) -> None:
    """``xstilts search`` against a real server that is stopped for 60 s once trials report, then restarted."""
    import subprocess

    from mlflow.tracking import MlflowClient
    from studies import driver_env, search_command, tail, tiny_study, trial_runs

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    args = ["--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"]
    args += ["--artifacts-destination", str(tmp_path / "store" / "artifacts")]
    space = tiny_study(
        tmp_path,
        cache_dir,
        name="outage",
        samples=4,
        # Long enough that trials still report once the server is down: the test stops it only after a
        # trial's en_dev reached MLflow, and a trial of 8 steps on a warm actor ends within a second (all
        # four had once finished before the stop). 160 steps with 20 evaluations take several seconds each.
        target={"max_steps": 160, "eval_every": 8},
        scheduler={"type": "fifo"},
        languages=["en", "de"],
    )
    storage = tmp_path / "storage"
    log = tmp_path / "driver.log"
    env = {k: v for k, v in driver_env().items() if not k.startswith("MLFLOW_HTTP")}
    with server(START_LOCAL, args, _server_env(), tmp_path, uri), log.open("w") as out:
        driver = subprocess.Popen(
            search_command(space, "outage", storage, uri, "--max-concurrent-trials", "1"),
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 600
        while not any("en_dev" in run.data.metrics for run in trial_runs(uri, "outage")):
            assert driver.poll() is None, tail(log)
            assert time.monotonic() < deadline, "no trial reported en_dev within 600 s"
            time.sleep(1)
    stopped_at = time.monotonic()
    reported_before = len(_tune_results(storage, "outage"))
    time.sleep(OUTAGE_S)
    reported_during = len(_tune_results(storage, "outage")) - reported_before
    with server(START_LOCAL, args, _server_env(), tmp_path, uri):
        restarted_at = time.monotonic()
        code = driver.wait(timeout=900)
        recovered_s = time.monotonic() - restarted_at
        assert code == 0, tail(log)
        reported = _tune_results(storage, "outage")
        runs = trial_runs(uri, "outage")
        run_ids = {run.data.tags[tracking.TRIAL_TAG]: run.info.run_id for run in runs}
        lost, duplicated = _lost_and_duplicated(uri, run_ids, reported)
        parent = MlflowClient(tracking_uri=uri).search_runs(
            [runs[0].info.experiment_id], filter_string="tags.`xstilts.kind` = 'search'"
        )
    print(
        f"outage {restarted_at - stopped_at:.0f} s; {reported_during} results reported during it; "
        f"{len(reported)} results of {len(run_ids)} trials; lost {lost}, duplicated {duplicated}; "
        f"driver done {recovered_s:.0f} s after the restart"
    )
    assert reported_during > 0, "no trial reported while the server was down: the outage tested nothing"
    assert (lost, duplicated) == (0, 0)
    assert sorted(run_ids) == sorted({trial_id for trial_id, _ in reported})  # every trial, once
    assert len(runs) == len(run_ids)
    assert all(run.data.tags[tracking.STATUS_TAG] == "completed" for run in runs)
    assert parent[0].info.status == "FINISHED"
