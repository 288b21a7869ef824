"""``xstilts run``: one transfer configuration as one Ray Train job (or in-process)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trainers.config import TransferConfig
from trainers.progress import ProgressSettings
from trainers.worker import RESULTS_FILE, Plan, run_local


def run_transfer(
    config: TransferConfig, backend: str = "ray", storage_path: str = "runs/ray"
) -> dict[str, Any]:
    """Run phases 1-3 of ``config``; return the final metrics."""
    ProgressSettings.from_env()  # a bad XSTILTS_PROGRESS_EVERY_S is one line now, not a worker's error later
    plan = Plan.for_config(config)
    if backend == "local":
        return run_local(plan)
    from search.launch import init_ray, ray_address_pinned, trainer_for

    init_ray()
    plan.launched_at = time.time()
    name = f"run-{config.target.task}-{config.fingerprint()}"
    with ray_address_pinned():
        result = trainer_for(plan, name, storage_path).fit()
    if result.error is not None:
        raise result.error
    return read_results(result.checkpoint)


def read_results(checkpoint: Any) -> dict[str, Any]:
    """The final metrics a job wrote into its last checkpoint (Ray Train V2 keeps metrics only there)."""
    import json

    if checkpoint is None:
        raise RuntimeError("the training job reported no final checkpoint")
    with checkpoint.as_directory() as directory:
        return dict(json.loads((Path(directory) / RESULTS_FILE).read_text()))
