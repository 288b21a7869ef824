"""A Ray Train worker SIGKILLed mid-phase: Ray Train restarts the worker group and the phase resumes from
the last checkpoint it reported, not from step 0, and the run finishes.

``xstilts run`` (the Ray backend, one worker) checkpoints the target phase every EVERY steps; once a
checkpoint is in the run's storage, the training worker process (and only it, found in the driver's own
session) is killed once Ray Train's controller has registered that checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from studies import driver_env, tail

pytestmark = pytest.mark.slow

EVERY = 5
TOTAL = 60
TIMEOUT_S = 600


def _committed_steps(storage: Path) -> list[int]:
    """Target steps of the checkpoints Ray Train's controller has registered (its snapshot in storage).

    Only these survive a worker's death: a checkpoint uploaded but not yet registered when the worker
    dies is not handed to the restarted workers, which then start where the last registered one was.
    """
    steps = []
    for snapshot in storage.glob("*/checkpoint_manager_snapshot.json"):
        try:
            results = json.loads(snapshot.read_text())["checkpoint_results"]
        except (OSError, ValueError, KeyError):
            continue  # being written
        steps += [int(r["metrics"]["target_step"]) for r in results if r["metrics"].get("target_step")]
    return sorted(steps)


def _session_pids(session: int, marker: str) -> list[int]:
    """Pids of the processes in ``session`` (the driver's: nobody else's are touched) whose command line holds ``marker``."""
    listing = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True, check=True)
    return [
        int(pid)
        for pid, sid, args in (line.split(None, 2) for line in listing.stdout.splitlines())
        if int(sid) == session and marker in args
    ]


def _kill_once_checkpointed(
    argv: list[str], cwd: Path, log: Path, steps: Callable[[Path], list[int]], storage: Path, marker: str
) -> tuple[int, int, float]:
    """Start ``argv`` in its own session; once ``steps(storage)`` lists a checkpoint, SIGKILL its processes whose
    command line holds ``marker``; wait (bounded) for it to finish with 0.

    Returns how many processes were killed, the last checkpoint step seen after the kill, and the seconds
    from the kill to the end.
    """
    with log.open("w") as out:
        driver = subprocess.Popen(
            argv, cwd=cwd, env=driver_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not steps(storage):
            assert driver.poll() is None, tail(log)
            assert time.monotonic() < deadline, "no checkpoint reported in time"
            time.sleep(0.2)
        victims = _session_pids(driver.pid, marker)
        assert victims, f"no {marker} process found in the driver's session"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        killed_after = steps(storage)[-1]
        started = time.monotonic()
        assert driver.wait(timeout=TIMEOUT_S) == 0, tail(log)
        return len(victims), killed_after, time.monotonic() - started
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)


@pytest.mark.soak  # a Ray Train job's worker group restarted: over a minute (CI runs the in-process kill below)
def test_a_killed_worker_resumes_its_phase_from_the_last_checkpoint(tiny_config: Any, tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path / "out", "pawsx", None, [f"target.checkpoint_every={EVERY}", f"target.max_steps={TOTAL}"]
    )
    config_path = tmp_path / "config.yaml"
    config.save(config_path)
    storage = tmp_path / "ray-storage"
    workers, killed_after, recovered_s = _kill_once_checkpointed(
        ["xstilts", "run", "--config", str(config_path), "--storage", str(storage)],
        tmp_path,
        tmp_path / "run.log",
        _committed_steps,
        storage,
        "RayTrainWorker",
    )
    (results_file,) = [
        path for path in storage.rglob("results.json") if json.loads(path.read_text()).get("finished")
    ]
    results = json.loads(results_file.read_text())
    print(
        f"killed {workers} worker(s) after the step-{killed_after} checkpoint; finished {recovered_s:.0f} s later"
    )
    assert results["target_step"] == TOTAL and results["finished"] == 1.0
    # Resumed from a checkpoint of the killed attempt: at or after the one seen before the kill.
    assert killed_after <= results["target/resumed_from_step"] < TOTAL
    assert results["target/resumed_from_step"] % EVERY == 0


def _tune_checkpoint_steps(storage: Path) -> list[int]:
    """Target steps of the checkpoints in-process trials have reported to Tune (persisted in their trial dirs)."""
    steps = []
    for state in storage.glob("*/*/*/checkpoint_*/state.json"):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue  # being written
        if data.get("phase") == "target":
            steps.append(int(data["step"]))
    return sorted(steps)


def test_a_killed_in_process_trial_resumes_its_phase_from_its_last_checkpoint(tmp_path: Path) -> None:
    """A one-worker search trial trains in its Tune actor (scaling.worker_group: auto): kill that actor
    mid-phase and Tune's retry resumes the phase from the trial's last checkpoint, in the same MLflow run."""
    from studies import search_command, tiny_study, trial_runs

    from trainers import keys

    space = tiny_study(
        tmp_path,
        tmp_path / "cache",
        name="tk",
        samples=1,  # the first seeded point: no intermediate phase
        target={"max_steps": TOTAL, "eval_every": 20, "checkpoint_every": EVERY},
        scheduler={"type": "fifo"},
        languages=["en", "de"],
    )
    storage = tmp_path / "storage"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _, killed_after, _ = _kill_once_checkpointed(
        search_command(space, "tk", storage, uri),
        tmp_path,
        tmp_path / "search.log",
        _tune_checkpoint_steps,
        storage,
        "ImplicitFunc",  # Tune's trial actor
    )
    (run,) = trial_runs(uri, "tk")  # one trial, one run: the retry logged into it
    metrics = run.data.metrics
    print(f"killed the trial actor after the step-{killed_after} checkpoint; resumed from {metrics}")
    assert run.data.tags[keys.STATUS_TAG] == keys.COMPLETED
    assert metrics[keys.TARGET_STEP] == TOTAL and metrics[keys.FINISHED] == 1.0
    resumed = metrics["target/resumed_from_step"]
    assert 0 < resumed < TOTAL and resumed % EVERY == 0
