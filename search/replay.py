"""Replay a search against a recorded grid: the real driver, with trials answered from the table.

``xstilts search --replay GRID`` runs the same driver as a real search — Ray Tune, the space's Optuna
sampler and ASHA scheduler, MLflow tracking and the intermediate-checkpoint cache's reuse logic —
but each trial, instead of launching a Ray Train job, looks its configuration up in a recorded grid
(``benchmarks/grid.py``) and reports what the real run reported, step by step. A simulated clock
charges each trial what the grid measured: the target phase up to each report, and the intermediate
phase only when the trial trains it (no published checkpoint in the cache: the trial leases the key,
"trains" it and publishes an empty entry that later trials reuse, exactly as real trials do).

Trials report ``cost/gpu_s`` (what they consumed so far, in measured device-seconds),
``cost/intermediate_gpu_s`` (0 for a reused intermediate phase) and ``cost/target_gpu_s``, and each
report is also appended to ``<cache_root>/../replay-ledger.jsonl`` for the benchmark to read.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.space import CategoricalParam, IntParam, SearchSpace, enumerate_points
from search.trial import TrialSettings, claim_intermediate, trial_config
from trainers import keys
from trainers.checkpoint_cache import CheckpointCache, at_steps, intermediate_key, intermediate_run
from trainers.config import TransferConfig
from trainers.errors import UserError
from trainers.keys import COST_GPU_S, COST_PHASE_GPU_S, FINISHED

LEDGER = "replay-ledger.jsonl"
"""The ledger's file name, beside the replay's cache root."""
LEDGER_FIELDS = ("trial_id", "cell", "target", "time")
"""What a ledger record holds besides the metrics the trial reported to Tune."""


class ReplayError(UserError, ValueError):
    """A space or trial the recorded grid cannot answer (one line)."""


@dataclass(frozen=True)
class ReplaySettings:
    """How trials are answered from a recorded grid."""

    grid: str
    """The grid's Parquet file."""
    reuse_intermediate: bool = True
    """Reuse published intermediate checkpoints (xstilts); ``False`` charges every trial its own."""
    ledger: str = ""
    """JSON-lines file every report is appended to (default: beside the cache root)."""


def cell_key(config: TransferConfig) -> str:
    """The grid's key of a trial's configuration (``benchmarks/grid.py``'s ``Cell.key``)."""
    inter = config.intermediate
    name = "+".join(inter.tasks) if inter is not None else "none"
    steps = int(inter.max_steps or 0) if inter is not None else 0
    return (
        f"{config.target.task}|{name}|{steps}|{config.target.freeze_depth}|"
        f"{config.target.learning_rate:g}|{config.seed}"
    )


@functools.lru_cache(maxsize=4)
def load_grid(path: str) -> dict[str, dict[str, Any]]:
    """The grid's rows by cell key (read once per process)."""
    import pandas as pd

    if not Path(path).is_file():
        raise ReplayError(f"--replay {path}: grid file not found (generate it with benchmarks/grid.py)")
    frame = pd.read_parquet(path)
    rows: dict[str, dict[str, Any]] = {}
    for row in frame.to_dict(orient="records"):
        for column in ("curve_step", "curve_en_dev", "curve_target_dev", "curve_s"):
            row[column] = [float(v) for v in row[column]]
        rows[str(row["cell"])] = row
    return rows


def space_points(space: SearchSpace, target: str) -> list[dict[str, Any]]:
    """Every flat point ``target``'s study can suggest; a continuous parameter cannot be replayed."""
    points = enumerate_points(space, target)
    if points is None:
        param = next(
            p
            for p in space.params
            if not isinstance(p, CategoricalParam) and not (isinstance(p, IntParam) and not p.log)
        )
        raise ReplayError(
            f"{space.source}: {param.name} is continuous; a replayed space takes the grid's values "
            "(type: categorical)"
        )
    return points


def retrieval_row(grid: str, config: TransferConfig) -> dict[str, Any] | None:
    """The grid's row of a retrieval evaluation: the target, intermediate configuration and seed decide it.

    A retrieval target has no target phase, so the grid records one cell per intermediate configuration
    (at its first freeze depth and learning rate, ``benchmarks/grid.py``); the config's own are ignored.
    """
    head = cell_key(config).split("|")
    for key, row in load_grid(grid).items():
        cell = key.split("|")
        if cell[:3] == head[:3] and cell[-1] == head[-1]:
            return row
    return None


def retrieval_metrics(grid: str, config: TransferConfig) -> dict[str, Any]:
    """What a retrieval evaluation of ``config`` reported when the grid was recorded, with its cost.

    The evaluation reads its encoder (the base, or a published intermediate checkpoint); it trains nothing.
    """
    row = retrieval_row(grid, config)
    if row is None:
        raise ReplayError(f"the grid has no retrieval cell for {cell_key(config)}")
    seconds = float(row["eval_s"])
    return {
        **_final_metrics(row),
        keys.INTERMEDIATE_REUSED: float(config.intermediate is not None),
        keys.COST_STEPS: 0.0,
        COST_PHASE_GPU_S.format(phase="intermediate"): 0.0,
        COST_PHASE_GPU_S.format(phase="eval"): seconds,
        COST_GPU_S: seconds,
    }


def check_space(space: SearchSpace, grid: str) -> None:
    """Every configuration the space can suggest is a cell of the grid: one line naming the first that is not.

    A retrieval target is evaluated on the base encoder and on each intermediate configuration the trained
    targets' studies can suggest (``search/retrieval_eval.py``): the grid needs its cell of each.
    """
    from trainers.tasks import get_task

    rows = load_grid(grid)
    retrieval = [t for t in space.targets if get_task(t).is_retrieval]
    trained = [t for t in space.targets if t not in retrieval]
    for target in retrieval:
        base = space.base_config(target)
        sources = [space.to_transfer_config(p, t) for t in trained for p in space_points(space, t)]
        for source in [dataclasses.replace(base, intermediate=None), *sources]:
            config = dataclasses.replace(source, target=base.target)
            if retrieval_row(grid, config) is None:
                raise ReplayError(
                    f"--replay {grid}: the grid has no retrieval cell {cell_key(config)} (target|intermediate|"
                    "steps|freeze depth|target lr|seed; the last three but the seed are not matched)"
                )
    for target in trained:
        for point in space_points(space, target):
            key = cell_key(space.to_transfer_config(point, target))
            if key not in rows:
                raise ReplayError(
                    f"--replay {grid}: the grid has no cell {key} (target|intermediate|steps|freeze depth|"
                    "target lr|seed): the space must stay on the grid's values"
                )


def _ledger_path(settings: TrialSettings, replay: ReplaySettings) -> Path:
    return Path(replay.ledger) if replay.ledger else Path(settings.cache_root).parent / LEDGER


def _row(replay: ReplaySettings, config: TransferConfig) -> dict[str, Any]:
    row = load_grid(replay.grid).get(cell_key(config))
    if row is None:
        raise ReplayError(f"the grid has no cell {cell_key(config)}")
    return row


def replay_trial(params: dict[str, Any], settings: TrialSettings, replay: ReplaySettings) -> None:
    """Tune's function trainable in replay mode: report the grid's record of this configuration."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    ledger = _ledger_path(settings, replay)
    done = _finished_record(ledger, trial_id)
    if done is not None:
        # A restart after the end (the driver stopped before it took the final result): report the record
        # again, as a real trial restarted on its final checkpoint does; nothing is replayed or charged twice.
        tune.report(done)
        return
    config = trial_config(settings, params, trial_id)
    row = _row(replay, config)
    intermediate_cost = 0.0
    reused = 0.0
    if config.intermediate is not None:
        if replay.reuse_intermediate:  # the real trials' claim: reuse, wait for, or lease and "train"
            found, lease = claim_intermediate(config, settings, trial_id, poll_s=0.2)
            if found is None:
                assert lease is not None
                run = intermediate_run(config)
                intermediate_cost = float(_row(replay, run)["intermediate_s"])  # the whole run's cost
                cache = CheckpointCache(settings.cache_root)
                assert run.intermediate is not None
                # What the run publishes, shortest first and its own entry last, as the real run does.
                lengths = sorted(set(run.intermediate.publish_steps))
                entries = [at_steps(run, steps) for steps in lengths] if lengths else [run]
                for entry in entries:
                    key = intermediate_key(entry)
                    meta = {"replayed_from": replay.grid, "cell": row["cell"]}
                    cache.publish(cache.staging_dir(key), key, meta)
                lease.release()
            else:
                reused = 1.0
        else:
            intermediate_cost = float(row["intermediate_s"])

    intermediate_steps = float(row["intermediate_steps"]) if intermediate_cost > 0 else 0.0

    def report(metrics: dict[str, Any], target_cost: float) -> None:
        metrics = {
            **metrics,
            keys.INTERMEDIATE_REUSED: reused,
            keys.COST_STEPS: intermediate_steps + float(metrics.get(keys.TARGET_STEP, 0)),
            COST_PHASE_GPU_S.format(phase="intermediate"): intermediate_cost,
            COST_PHASE_GPU_S.format(phase="target"): target_cost,
            COST_GPU_S: intermediate_cost + target_cost,
        }
        record = dict(
            zip(LEDGER_FIELDS, (trial_id, row["cell"], config.target.task, time.time()), strict=True)
        )
        with ledger.open("a") as handle:
            handle.write(json.dumps({**record, **metrics}) + "\n")
        tune.report(metrics)

    report({keys.TARGET_STEP: 0}, 0.0)
    steps, en_dev, target_dev, seconds = (
        row["curve_step"],
        row["curve_en_dev"],
        row["curve_target_dev"],
        row["curve_s"],
    )
    if not steps:  # a retrieval target: no target phase, only its evaluation
        final_cost = float(row["eval_s"])
        report(_final_metrics(row), final_cost)
        return
    for index, step in enumerate(steps):
        metrics: dict[str, Any] = {keys.TARGET_STEP: int(step), keys.EN_DEV: en_dev[index]}
        if not math.isnan(target_dev[index]):
            metrics[keys.TARGET_DEV_AVG_NON_EN] = target_dev[index]
        if index == len(steps) - 1:
            report({**metrics, **_final_metrics(row)}, float(row["target_s"]) + float(row["eval_s"]))
        else:
            report(metrics, seconds[index])


def _finished_record(ledger: Path, trial_id: str) -> dict[str, Any] | None:
    """The metrics of ``trial_id``'s final report in the ledger, or None if it has not finished."""
    if not ledger.is_file():
        return None
    last: dict[str, Any] | None = None
    for line in ledger.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line another trial is writing
        if record.get("trial_id") == trial_id:
            last = record
    if last is None or last.get(FINISHED) != 1.0:
        return None
    return {k: v for k, v in last.items() if k not in LEDGER_FIELDS}


def _final_metrics(row: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        keys.ZERO_SHOT_AVG: float(row[keys.ZERO_SHOT_AVG]),
        **{
            keys.ZERO_SHOT_LANG.format(lang=lang): float(v)
            for lang, v in row["zero_shot"].items()
            if v is not None
        },
        FINISHED: 1.0,
    }
    if not math.isnan(float(row[keys.EN_DEV])):
        metrics[keys.EN_DEV] = float(row[keys.EN_DEV])
    return metrics
