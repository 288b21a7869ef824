"""What a search costs to find each target's best transfer configuration, against the exhaustive grid.

Replays searches against the recorded grid (``benchmarks/grid.py``), over ``--seeds`` seeds each:

(a) ``grid``: the paper's exhaustive grid in its natural order (every intermediate configuration
    trained once and reused by every target, then every target configuration);
(b) ``random``: random search over the same cells, ``--samples`` per target, no early stopping, every
    trial training its own intermediate model;
(c) ``tune_no_reuse``: Ray Tune + Optuna TPE + ASHA as a user would set it up: the real driver
    (``xstilts search --replay``), no seeded points, every trial training its own intermediate model,
    ``tuner.refine: off`` (since issue 11 the driver still never repeats a configuration);
(d) ``xstilts``: the real driver as it is (seeded baseline first, every target's study at once taking
    turns at the one trial slot, the intermediate-checkpoint cache shared by trials and targets, the
    searcher's rules of ``search/searcher.py`` with the default ``tuner.refine``); saved outcomes of the
    driver before those rules are kept in ``search_efficiency_outcomes.jsonl`` as
    ``xstilts_before_issue_11``;
(e) ``xstilts_warm``: the same with ``--warm-start`` (each study first tries the other targets' best
    intermediate settings as they appear);
(f) ``xstilts_cheap_first``: the same with ``tuner.refine: cheap_first`` (the best trial's neighbours on
    trained intermediate checkpoints before those that need a new training).

(a) and (b) do not adapt to what they observe, so they are priced straight from the table; (c) and (d)
run the project's real search driver (Ray Tune, its sampler and scheduler, MLflow, the cache) with
trials answered from the grid, one at a time, on a simulated clock (``search/replay.py``).

Per target and overall it prints the compute (measured device-seconds, and optimizer steps) until the
incumbent (best completed trial on the selection metric, ``--metric``: ``en_dev`` by default) is within 1 point of the grid's
best, the zero-shot regret of what each method would select, the intermediate trainings run, and the
ratio of each method's compute to the whole grid's. It writes a PNG of zero-shot regret against
compute and ends with ``RESULT xstilts_vs_grid=... random_vs_grid=... tune_no_reuse_vs_grid=...`` (and
``xstilts_before_issue_11_vs_grid`` when the saved outcomes hold it).

    python benchmarks/search_efficiency.py --grid benchmarks/grid/miniature_tiny.parquet --seeds 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from efficiency_tables import Grid, Outcome, Trial, report  # noqa: E402  (beside this script)

from trainers import keys  # noqa: E402  (standard library only; found through ROOT when run as a script)

TARGETS = ("udpos", "panx")


def load(path: str) -> dict[int, Grid]:
    """The grid file, split by grid seed."""
    import pandas as pd

    frame = pd.read_parquet(path)
    grids: dict[int, Grid] = {}
    for seed, part in frame.groupby("seed"):
        grids[int(seed)] = Grid(part.to_dict(orient="records"))
    return grids


def grid_method(grid: Grid, seed: int, targets: tuple[str, ...], metric: str) -> Outcome:
    """(a) the exhaustive grid in its natural order; a shared intermediate is split over the targets."""
    outcome = Outcome("grid", seed)
    trained_keys: set[str] = set()
    paid: set[tuple[str, str]] = set()
    for row in [r for r in grid.rows if r["target"] in targets]:
        cost, steps, trained = row["target_s"] + row["eval_s"], float(row["target_steps"]), False
        key = row["intermediate_key"]
        if key and key not in trained_keys:
            trained_keys.add(key)
            trained = True
        if key and (key, row["target"]) not in paid:  # trained once, shared: each target pays its share
            paid.add((key, row["target"]))
            cost += row["intermediate_s"] / len(targets)
            steps += row["intermediate_steps"] / len(targets)
        outcome.trials.append(
            Trial(row["target"], cost, steps, trained, True, row[metric], row[keys.ZERO_SHOT_AVG])
        )
    return outcome


def random_method(grid: Grid, seed: int, samples: int, targets: tuple[str, ...], metric: str) -> Outcome:
    """(b) random search without early stopping or reuse."""
    rng = random.Random(seed)
    outcome = Outcome("random", seed)
    for target in targets:
        for row in rng.sample(grid.of(target), samples):
            cost = row["intermediate_s"] + row["target_s"] + row["eval_s"]
            steps = row["intermediate_steps"] + row["target_steps"]
            outcome.trials.append(
                Trial(
                    target,
                    cost,
                    steps,
                    bool(row["intermediate_key"]),
                    True,
                    row[metric],
                    row[keys.ZERO_SHOT_AVG],
                )
            )
    return outcome


def space_for(
    seed: int,
    grid_seed: int,
    samples: int,
    seeded_points: bool,
    targets: tuple[str, ...],
    metric: str,
    refine: str | None = None,
) -> dict[str, Any]:
    """The replayed space: the grid's values and the demo's base settings; ``seed`` seeds the sampler."""
    from benchmarks import grid as recorded

    tasks = [("+".join(t) if len(t) > 1 else (t[0] if t else "none")) for t in recorded.INTERMEDIATE_TASKS]
    choices: list[Any] = [t if "+" not in t else t.split("+") for t in tasks]
    space: dict[str, Any] = {
        "name": "replay",
        "description": "The recorded grid's space, replayed (benchmarks/search_efficiency.py).",
        "targets": list(targets),
        "base": {
            "model": {"name_or_path": "tiny", "max_seq_length": 64, "doc_stride": 32},
            "data": {"source": "miniature", "max_train_examples": 256, "max_eval_examples": 64},
            "deepspeed": {"zero_stage": 0, "precision": "fp32"},
            "scaling": {"num_workers": 1, "use_gpu": False, "cpus_per_worker": 0.95},
            "evaluation": {"split": "test", "batch_size": 64},
            "intermediate": {
                "batch_size": 16,
                "warmup_ratio": 0.1,
                "learning_rate": recorded.INTERMEDIATE_LR,
            },
            "target": {
                "batch_size": 16,
                "max_steps": recorded.TARGET_STEPS,
                "eval_every": recorded.EVAL_EVERY,
                "warmup_ratio": 0.1,
                "eval_target_dev": True,
            },
            "seed": grid_seed,
        },
        "search": {
            "intermediate_task": {"type": "categorical", "choices": choices},
            "intermediate.max_steps": {
                "type": "categorical",
                "choices": list(recorded.INTERMEDIATE_STEPS),
                "when": {"intermediate_task": {"not": "none"}},
            },
            "target.freeze_depth": {"type": "categorical", "choices": list(recorded.FREEZE_DEPTHS)},
            "target.learning_rate": {"type": "categorical", "choices": list(recorded.TARGET_LRS)},
        },
        "tuner": {
            "num_samples": samples,
            "metric": metric,
            "mode": "max",
            "scheduler": {
                "type": "asha",
                "grace_period": recorded.EVAL_EVERY,
                "reduction_factor": 2,
                "max_t": recorded.TARGET_STEPS,
            },
            "sampler_seed": seed,
        },
    }
    if not seeded_points:  # Tune + Optuna as a user would set it up: TPE alone
        space["tuner"]["refine"] = "off"
    if refine is not None:
        space["tuner"]["refine"] = refine
    if seeded_points:  # what spaces/demo.yaml seeds: the baseline first, then one intermediate task
        space["points_to_evaluate"] = [
            {"intermediate_task": "none", "target.freeze_depth": 0, "target.learning_rate": 1e-3},
            {
                "intermediate_task": "ccg",
                "intermediate.max_steps": max(recorded.INTERMEDIATE_STEPS),
                "target.freeze_depth": 0,
                "target.learning_rate": 1e-3,
            },
        ]
    return space


def driver_method(
    method: str,
    grid_path: str,
    seed: int,
    grid_seed: int,
    samples: int,
    workdir: Path,
    targets: tuple[str, ...],
    metric: str,
    reuse: bool,
    seeded_points: bool,
    warm_start: bool = False,
    refine: str | None = None,
) -> Outcome:
    """(c), (d): the real search driver, trials answered from the grid, one at a time."""
    from search.replay import LEDGER
    from search.tuner import SearchOptions, run_search

    run_dir = workdir / f"{method}-{seed}"
    run_dir.mkdir(parents=True)
    space_file = run_dir / "space.yaml"
    space_file.write_text(
        yaml.safe_dump(
            space_for(seed, grid_seed, samples, seeded_points, targets, metric, refine), sort_keys=False
        )
    )
    options = SearchOptions(
        space=str(space_file),
        name=f"{method}-{seed}",
        storage=str(run_dir / "storage"),
        tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}",
        cache_root=str(run_dir / "cache" / "intermediate"),
        max_concurrent_trials=1,
        replay=grid_path,
        reuse_intermediate=reuse,
        warm_start=warm_start,
    )
    run_search(options)
    reports = [json.loads(line) for line in (run_dir / "cache" / LEDGER).read_text().splitlines()]
    last: dict[str, dict[str, Any]] = {}
    for entry in reports:  # trials ran one at a time: first appearance is their order
        last[entry["trial_id"]] = {**last.get(entry["trial_id"], {}), **entry}
    outcome = Outcome(method, seed)
    for metrics in last.values():
        finished = metrics.get(keys.FINISHED) == 1.0
        outcome.trials.append(
            Trial(
                metrics["target"],
                float(metrics[keys.COST_GPU_S]),
                float(metrics[keys.COST_STEPS]),
                float(metrics[keys.COST_PHASE_GPU_S.format(phase="intermediate")]) > 0,
                finished,
                float(metrics.get(metric, float("nan"))),
                float(metrics.get(keys.ZERO_SHOT_AVG, float("nan"))),
            )
        )
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Replay every method over the seeds and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=str(ROOT / "benchmarks" / "grid" / "miniature_tiny.parquet"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--grid-seeds", type=int, nargs="+", help="only these seeds of the grid (default: all)"
    )
    parser.add_argument("--samples", type=int, default=30, help="trials per target of each search")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument(
        "--metric",
        default=keys.EN_DEV,
        choices=[keys.EN_DEV, keys.TARGET_DEV_AVG_NON_EN],
        help="the selection metric the searches optimise and select on (docs/selection.md)",
    )
    parser.add_argument("--methods", nargs="+", default=["grid", "random", "tune_no_reuse", "xstilts"])
    parser.add_argument("--plot", default="benchmarks/search_efficiency.png")
    parser.add_argument("--workdir", help="keep each replayed search here (default: a temporary directory)")
    parser.add_argument(
        "--outcomes",
        help="JSON lines: every method's trials per seed, appended as each seed finishes; with "
        "--report-only, the tables are made from it",
    )
    parser.add_argument("--report-only", action="store_true", help="only report the --outcomes file")
    args = parser.parse_args(argv)
    targets = tuple(args.targets)

    grids = load(args.grid)
    if args.grid_seeds:
        grids = {seed: grids[seed] for seed in args.grid_seeds}
    started = time.time()
    outcomes: dict[str, list[tuple[Outcome, Grid]]] = defaultdict(list)
    if args.report_only:
        for line in Path(args.outcomes).read_text().splitlines():
            data = json.loads(line)
            outcome = Outcome(data["method"], data["seed"], [Trial(**t) for t in data["trials"]])
            outcomes[outcome.method].append((outcome, grids[data["grid_seed"]]))
        report(outcomes, grids, targets, args.metric, args.plot)
        return 0
    with tempfile.TemporaryDirectory(prefix="xstilts-replay-") as tmp:
        workdir = Path(args.workdir or tmp)
        for seed in range(args.seeds):
            grid_seed = sorted(grids)[seed % len(grids)]  # replay seeds cycle over the grid's seeds
            grid = grids[grid_seed]
            for method in args.methods:
                if method == "grid":
                    outcome = grid_method(grid, seed, targets, args.metric)
                elif method == "random":
                    outcome = random_method(grid, seed, args.samples, targets, args.metric)
                else:
                    reuse = method.startswith("xstilts")
                    outcome = driver_method(
                        method,
                        args.grid,
                        seed,
                        grid_seed,
                        args.samples,
                        workdir,
                        targets,
                        args.metric,
                        reuse=reuse,
                        seeded_points=reuse,
                        warm_start=method == "xstilts_warm",
                        refine="cheap_first" if method == "xstilts_cheap_first" else None,
                    )
                outcomes[method].append((outcome, grid))
                if args.outcomes:
                    with open(args.outcomes, "a") as handle:
                        record = {"method": method, "seed": seed, "grid_seed": grid_seed}
                        trials = [dataclasses.asdict(t) for t in outcome.trials]
                        handle.write(json.dumps({**record, "trials": trials}) + "\n")
            print(f"seed {seed}: done ({time.time() - started:.0f} s)", flush=True)
    report(outcomes, grids, targets, args.metric, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
