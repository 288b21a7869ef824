"""Start-up and teardown of a search trial: a Ray Train job per trial vs the trial's own process.

The demo's trial (spaces/demo.yaml: the tiny encoder, one worker of 0.95 CPU) run by ``xstilts search``
twice in one run of this script, side by side: with ``scaling.worker_group: always`` (every trial a Ray
Train ``TorchTrainer`` job, as xstilts shipped before) and ``auto`` (a one-worker trial runs the per-worker
function in its own Tune actor, which Tune reuses for the next trial). Every trial runs to its end (FIFO,
no early stopping), so each has a first and a last optimizer step. Trials are target-only by default (the
demo's no-intermediate point and learning rates), so no trial's start-up includes a wait for another
trial's intermediate checkpoint; ``--with-intermediate`` keeps the demo's intermediate tasks (each mode then
has its own intermediate-checkpoint cache). The data and the tiny encoder are built once before.

Per trial, from the driver's clock and the trial's own (one machine, one clock):

- start-up: from the trial's start (its MLflow child run is created when Tune starts it) to the end of its
  first optimizer step (``time/first_step_at``);
- teardown: from the end of its last optimizer step (``time/last_step_at``) to the trial's end (its MLflow
  run ended when Tune saw it complete). Zero-shot evaluation is part of it: it follows the last step.

The table gives medians over trials and the search's wall time, then a ``RESULT`` line for the ``auto``
mode. ``python benchmarks/startup.py [--samples 4] [--modes always,auto]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "spaces" / "demo.yaml"


def space_for(mode: str, samples: int, target: str, cache: Path, directory: Path, intermediate: bool) -> Path:
    """The demo space, one target, FIFO, ``samples`` trials, with ``scaling.worker_group: mode``."""
    data = yaml.safe_load(DEMO.read_text())
    data["name"] = f"startup-{mode}"
    data["targets"] = [target]
    data["base"]["scaling"]["worker_group"] = mode
    data["base"]["data"]["cache_dir"] = str(cache)
    data["tuner"]["num_samples"] = samples
    data["tuner"]["scheduler"] = {"type": "fifo"}
    if not intermediate:
        # Target-only trials: no trial waits on another's intermediate checkpoint before its first step,
        # so start-up is the machinery's alone.
        data["search"]["intermediate_task"]["choices"] = ["none"]
        data["points_to_evaluate"] = [
            p for p in data["points_to_evaluate"] if p["intermediate_task"] == "none"
        ]
    path = directory / f"space-{mode}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def warm_up(cache: Path, root: Path) -> None:
    """Build the miniature data and the tiny encoder once, so neither mode's first trial pays for them."""
    subprocess.run(
        [
            sys.executable, "-m", "search.cli", "run", "--backend", "local",
            "--set", f"data.cache_dir={cache}", "--set", f"output_dir={root / 'warm'}",
            "--set", "target.max_steps=1", "--set", "intermediate.max_steps=1",
        ],
        check=True, capture_output=True, cwd=root,
    )  # fmt: skip


def run_search(space: Path, mode: str, root: Path, uri: str) -> float:
    """Wall seconds of ``xstilts search`` on ``space`` (a fresh Ray instance each)."""
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable, "-m", "search.cli", "search", "--space", str(space), "--name", f"startup-{mode}",
            "--storage", str(root / "storage"), "--tracking-uri", uri,
            "--cache-root", str(root / f"intermediate-{mode}"),
        ],
        capture_output=True, text=True, cwd=root, env={**os.environ, "RAY_ADDRESS": ""},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"search ({mode}) failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def trial_times(uri: str, mode: str) -> list[dict[str, float]]:
    """Start-up and teardown seconds of every trial of search ``startup-<mode>``."""
    from mlflow.tracking import MlflowClient

    from search.layout import SearchLayout
    from trainers.keys import INTERMEDIATE_REUSED, KIND_TAG, KIND_TRIAL, TIME_FIRST_STEP_AT, TIME_LAST_STEP_AT

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(SearchLayout(f"startup-{mode}").experiment_name)
    assert experiment is not None, f"no experiment for mode {mode}"
    rows = []
    for run in client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{KIND_TRIAL}'"
    ):
        metrics: dict[str, Any] = run.data.metrics
        if TIME_FIRST_STEP_AT not in metrics or run.info.end_time is None:
            continue
        rows.append(
            {
                "startup_s": metrics[TIME_FIRST_STEP_AT] - run.info.start_time / 1000,
                "teardown_s": run.info.end_time / 1000 - metrics[TIME_LAST_STEP_AT],
                "reused": metrics.get(INTERMEDIATE_REUSED, 0.0),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4, help="trials per mode")
    parser.add_argument("--target", default="udpos")
    parser.add_argument("--modes", default="always,auto", help="scaling.worker_group values, in order")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--with-intermediate",
        action="store_true",
        help="keep the demo's intermediate tasks (start-up then includes waits for another trial's checkpoint)",
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    root = Path(tempfile.mkdtemp(prefix="xstilts-startup-"))
    cache = root / "cache"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    try:
        warm_up(cache, root)
        results = {}
        for mode in modes:
            space = space_for(mode, args.samples, args.target, cache, root, args.with_intermediate)
            wall = run_search(space, mode, root, uri)
            results[mode] = (wall, trial_times(uri, mode))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, {os.cpu_count()} CPUs; "
          f"load average {load:.1f}; {args.samples} trials of the demo's {args.target} study per mode")  # fmt: skip
    print("| worker_group | trials | start-up s (median, max) | teardown s (median, max) | search wall s |")
    print("|---|---|---|---|---|")
    medians: dict[str, tuple[float, float]] = {}
    for mode, (wall, rows) in results.items():
        if not rows:
            raise SystemExit(f"mode {mode}: no trial reported its steps")
        ups = [r["startup_s"] for r in rows]
        downs = [r["teardown_s"] for r in rows]
        medians[mode] = (statistics.median(ups), statistics.median(downs))
        print(
            f"| {mode} | {len(rows)} | {medians[mode][0]:.1f} ({max(ups):.1f}) | "
            f"{medians[mode][1]:.1f} ({max(downs):.1f}) | {wall:.0f} |"
        )
    if {"always", "auto"} <= medians.keys():
        (a_up, a_down), (b_up, b_down) = medians["always"], medians["auto"]
        wall_ratio = results["auto"][0] / results["always"][0]
        print(
            f"\nauto / always: start-up {b_up / a_up:.2f}x, teardown {b_down / a_down:.2f}x, wall {wall_ratio:.2f}x"
        )
    last = modes[-1]
    print(f"RESULT startup_s={medians[last][0]:.1f} teardown_s={medians[last][1]:.1f}")


if __name__ == "__main__":
    main()
