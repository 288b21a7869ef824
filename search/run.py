"""``xstilts run``: one transfer configuration as one Ray Train job (or in-process)."""

from __future__ import annotations

import time
from typing import Any

from trainers.config import TransferConfig
from trainers.worker import Plan, run_local


def run_transfer(
    config: TransferConfig, backend: str = "ray", storage_path: str = "runs/ray"
) -> dict[str, Any]:
    """Run phases 1-3 of ``config``; return the final metrics."""
    plan = Plan.for_config(config)
    if backend == "local":
        return run_local(plan)
    import ray

    from search.launch import trainer_for

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=True)
    plan.launched_at = time.time()
    name = f"run-{config.target.task}-{config.fingerprint()}"
    result = trainer_for(plan, name, storage_path).fit()
    if result.error is not None:
        raise result.error
    return dict(result.metrics or {})
