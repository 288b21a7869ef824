"""The per-worker function: one trial's phases, in order, in one process group.

``train_loop_per_worker`` is what a Ray Train ``TorchTrainer`` runs on every worker; ``run_in_trial``
runs a one-worker plan inside a Ray Tune trial's own process (no worker group to start); ``run_local``
runs the same plan as a plain process (or one torchrun rank) with no Ray at all. Start-up (Ray
workers, process group, DeepSpeed) is paid once per plan, not once per phase, and once per process
where Tune reuses a trial's process for the next trial.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainers import _loop, _phase, intermediate, progress, target, zero_shot_eval
from trainers.checkpoint_cache import (
    CheckpointCache,
    at_steps,
    intermediate_key,
    intermediate_run,
    key_fields,
)
from trainers.config import TransferConfig
from trainers.deepspeed_ops import prepare_ops
from trainers.encoders import resolve_encoder
from trainers.engine import init_distributed
from trainers.keys import (
    COST_GPU_S,
    COST_PHASE_GPU_S,
    COST_PHASES,
    FINISHED,
    INTERMEDIATE_REUSED,
    INTERMEDIATE_STEP,
    TARGET_STEP,
    TIME_FIRST_STEP_AT,
    TIME_LAST_STEP_AT,
    TIME_PHASE_S,
)
from trainers.runtime import LocalRuntime, MeteredRuntime, RayTrainRuntime, Runtime, TuneRuntime
from trainers.tasks import get_task

RESULTS_FILE = "results.json"
DONE = "done"


@dataclass
class Plan:
    """What one job runs: the config, and where the intermediate encoder comes from or goes."""

    config: TransferConfig
    """The resolved transfer configuration."""
    cache_root: str
    """Root of the intermediate-checkpoint cache (a shared filesystem on a cluster)."""
    reuse_dir: str | None = None
    """A published intermediate encoder to start the target phase from (phase 1 is skipped)."""
    launched_at: float = dataclasses.field(default_factory=time.time)
    """When the driver launched the job (wall clock), to measure start-up cost."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for ``train_loop_config``."""
        return {**dataclasses.asdict(self), "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Inverse of ``to_dict``."""
        return cls(**{**data, "config": TransferConfig.from_dict(data["config"])})

    @classmethod
    def for_config(cls, config: TransferConfig) -> Plan:
        """A plan with the default cache (``<cache_dir>/intermediate``) and no decided reuse."""
        return cls(config, str(Path(config.data.cache_dir).expanduser() / "intermediate"))


def _resume_state(checkpoint: Path | None) -> dict[str, Any]:
    if checkpoint is None or not (checkpoint / "state.json").is_file():
        return {}
    return dict(json.loads((checkpoint / "state.json").read_text()))


def _intermediate_encoder(
    runtime: Runtime, plan: Plan, base: str, checkpoint: Path | None, metrics: dict[str, Any]
) -> str:
    """The encoder the target phase starts from: a cached one, or one phase 1 trains and publishes now."""
    config = plan.config
    key = intermediate_key(config)
    cache = CheckpointCache(plan.cache_root)
    found = Path(plan.reuse_dir) if plan.reuse_dir else cache.lookup(key)
    if found is not None and not found.is_dir():
        raise FileNotFoundError(
            f"the cached intermediate checkpoint {found} is not visible on this node: the cache root "
            f"{plan.cache_root} must be one directory every node mounts (--cache-root / XSTILTS_CACHE)"
        )
    metrics[INTERMEDIATE_REUSED] = float(found is not None)
    if found is not None:
        return str(found)
    state = _resume_state(checkpoint)
    resume = checkpoint if state.get("phase") == intermediate.PHASE else None
    # One run serves every length it publishes (intermediate.publish_steps): train the longest, publish
    # each on the way; this trial's own entry is one of them.
    run = intermediate_run(config)

    def publish_at(steps: int, engine: Any, tokenizer: Any) -> None:
        partial = at_steps(run, steps)
        directory = _staging(runtime, cache, intermediate_key(partial))
        _phase.save_encoder(runtime, engine, tokenizer, directory, partial)
        _publish(runtime, cache, directory, partial, {INTERMEDIATE_STEP: float(steps)})

    staging = _staging(runtime, cache, intermediate_key(run))
    metrics.update(intermediate.run(runtime, run, base, staging, resume, publish_at))
    _publish(runtime, cache, staging, run, metrics)
    return str(cache.path(key))


def _staging(runtime: Runtime, cache: CheckpointCache, key: str) -> Path:
    """A fresh staging directory for ``key``, made by rank 0 and known to every rank."""
    staging = [str(cache.staging_dir(key)) if runtime.rank == 0 else ""]
    torch.distributed.broadcast_object_list(staging, src=0)
    return Path(staging[0])


def _publish(
    runtime: Runtime, cache: CheckpointCache, staging: Path, config: TransferConfig, metrics: dict[str, Any]
) -> None:
    """Rank 0 publishes ``staging`` as ``config``'s entry; every rank waits for it."""
    if runtime.rank == 0:
        cache.publish(
            staging, intermediate_key(config), {"key_fields": key_fields(config), "metrics": metrics}
        )
    torch.distributed.barrier()


def _quiet_libraries(rank: int) -> None:
    """Keep load reports (e.g. an unused pooler) out of the logs, and library bars off all but an interactive rank 0."""
    import transformers

    transformers.logging.set_verbosity_error()
    progress.set_rank(rank)
    progress.quiet_library_bars(rank)


def run_plan(runtime: Runtime, plan: Plan) -> dict[str, Any]:
    """Run phases 1-3 of ``plan`` and report the final metrics (also returned)."""
    config = plan.config
    runtime = MeteredRuntime(runtime, plan.launched_at)
    _loop.STEPS.reset()
    _quiet_libraries(runtime.rank)
    init_distributed(runtime.device, config.scaling.timeout_s)
    prepare_ops(config.deepspeed.offload_optimizer, config.scaling.timeout_s)
    metrics: dict[str, Any] = {
        TIME_PHASE_S.format(phase="startup"): time.time() - plan.launched_at,
        INTERMEDIATE_REUSED: 0.0,
    }
    checkpoint = runtime.latest_checkpoint()
    if _resume_state(checkpoint).get("phase") == DONE:
        # A restart after the end (e.g. a retried trial whose job had finished): report, don't retrain.
        assert checkpoint is not None
        finished = json.loads((checkpoint / RESULTS_FILE).read_text())
        runtime.report(finished, checkpoint_dir=_final_checkpoint(runtime, plan, finished))
        return dict(finished)
    encoder_dir = resolve_encoder(config.model.name_or_path, config.data.cache_dir)
    if config.intermediate is not None:
        encoder_dir = _intermediate_encoder(runtime, plan, encoder_dir, checkpoint, metrics)
    # Tell the driver now, so a trial stopped in phase 2 still shows its start-up and what phase 1 did.
    runtime.report({**metrics, TARGET_STEP: 0})
    engine = None
    if not get_task(config.target.task).is_retrieval:
        state = _resume_state(checkpoint)
        resume = checkpoint if state.get("phase") == target.PHASE else None
        engine, target_metrics = target.run(runtime, config, encoder_dir, resume)
        metrics.update(target_metrics)
    metrics.update(zero_shot_eval.run(runtime, config, engine, encoder_dir))
    metrics.update(_costs(metrics, runtime))
    metrics.update(
        {
            key: at
            for key, at in ((TIME_FIRST_STEP_AT, _loop.STEPS.first), (TIME_LAST_STEP_AT, _loop.STEPS.last))
            if at
        }
    )
    metrics[FINISHED] = 1.0
    runtime.report(metrics, checkpoint_dir=_final_checkpoint(runtime, plan, metrics))
    return metrics


def _costs(metrics: dict[str, Any], runtime: MeteredRuntime) -> dict[str, float]:
    """What the trial cost in device-seconds, in all and per phase (a reused intermediate costs 0)."""
    seconds = {phase: float(metrics.get(TIME_PHASE_S.format(phase=phase), 0.0)) for phase in COST_PHASES}
    costs = {COST_PHASE_GPU_S.format(phase=p): s * runtime.world_size for p, s in seconds.items()}
    return {**costs, COST_GPU_S: runtime.device_seconds()}


def _final_checkpoint(runtime: Runtime, plan: Plan, metrics: dict[str, Any]) -> Path:
    """A small last checkpoint: the results and the resolved config (Ray Train keeps metrics only with checkpoints)."""
    directory = runtime.scratch_dir() / "final"
    directory.mkdir(
        parents=True, exist_ok=True
    )  # every rank reports it (Ray Train uploads each rank's files)
    if runtime.rank == 0:
        (directory / RESULTS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        (directory / "state.json").write_text(json.dumps({"phase": DONE}))
        plan.config.save(directory / "config.yaml")
    torch.distributed.barrier()
    return directory


def use_reserved_cpus(cpus_per_worker: float) -> int:
    """Give torch as many threads as the worker reserved CPUs (rounded; at least 1); returns the count.

    Ray sets a worker's ``OMP_NUM_THREADS`` to the floor of its CPUs, so a worker that reserves 1.9 of a
    2-core machine (the trial's driver needs a sliver) computed on one core and left the other idle.
    """
    import torch

    threads = max(1, round(cpus_per_worker))
    torch.set_num_threads(threads)
    return threads


def train_loop_per_worker(plan: dict[str, Any]) -> None:
    """Ray Train entry point (``TorchTrainer(train_loop_per_worker, train_loop_config=plan.to_dict())``)."""
    parsed = Plan.from_dict(plan)
    use_reserved_cpus(parsed.config.scaling.cpus_per_worker)
    run_plan(RayTrainRuntime(use_gpu=parsed.config.scaling.use_gpu), parsed)


def run_in_trial(plan: Plan) -> dict[str, Any]:
    """Run a one-worker ``plan`` in this Ray Tune trial's own process (``scaling.worker_group: auto``)."""
    use_reserved_cpus(plan.config.scaling.cpus_per_worker)
    return run_plan(TuneRuntime(use_gpu=plan.config.scaling.use_gpu), plan)


def run_local(plan: Plan) -> dict[str, Any]:
    """Run ``plan`` in this process (or as one torchrun rank), without Ray; resumes from ``output_dir``."""
    runtime = LocalRuntime(Path(plan.config.output_dir), use_gpu=plan.config.scaling.use_gpu)
    if runtime.rank == 0:
        plan.config.save(runtime.output_dir / "config.yaml")
    metrics = run_plan(runtime, plan)
    if runtime.rank == 0:
        (runtime.output_dir / RESULTS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics
