"""Launch one plan as a Ray Train ``TorchTrainer`` job (DeepSpeed on every worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers.worker import Plan, train_loop_per_worker


def storage_uri(path: str) -> str:
    """An absolute path or a URI (Ray Train storage needs one)."""
    if "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def trainer_for(
    plan: Plan,
    name: str,
    storage_path: str,
    callbacks: list[Any] | None = None,
    max_failures: int = 1,
    keep_checkpoints: int = 2,
) -> Any:
    """A ``TorchTrainer`` running ``plan`` on ``plan.config.scaling`` workers.

    Re-fitting a trainer with the same ``name`` and ``storage_path`` resumes from its latest checkpoint
    (Ray Train V2 restores a run by name), so a restarted trial continues its phase where it stopped.
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    scaling = plan.config.scaling
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=plan.to_dict(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers, use_gpu=scaling.use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_uri(storage_path),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            callbacks=callbacks or [],
        ),
    )
