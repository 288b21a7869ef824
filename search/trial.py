"""One trial: a point of the space -> a plan of phases -> one Ray Train job (or, with one worker, this process).

The plan reuses a cached intermediate checkpoint when one exists. When several trials want the
same missing checkpoint, the first takes a lease and trains it; the others wait for it to be
published (or for the lease to expire, if its owner died) instead of training it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.space import SearchSpace
from trainers.checkpoint_cache import CheckpointCache, Lease, intermediate_key, intermediate_run
from trainers.config import TransferConfig


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one study shares (passed with ``tune.with_parameters``)."""

    space: SearchSpace
    """The study's search space."""
    target: str
    """The target task of this study."""
    search: str
    """The search name."""
    cache_root: str
    """The intermediate-checkpoint cache (shared storage on a cluster)."""
    train_storage: str
    """Where the trials' Ray Train runs keep their checkpoints."""
    lease_ttl_s: float = 120.0
    """A lease not renewed for this long is taken to belong to a dead trial."""
    wait_timeout_s: float = 6 * 3600.0
    """Longest wait for another trial's intermediate checkpoint."""
    max_failures: int = 1
    """Worker-group restarts within one trial's Train job (each resumes from its latest checkpoint)."""


def trial_config(settings: TrialSettings, params: dict[str, Any], trial_id: str) -> TransferConfig:
    """The resolved TransferConfig of a trial (its output directory named after the trial)."""
    config = settings.space.to_transfer_config(params, settings.target)
    config.output_dir = str(Path(settings.train_storage.replace("://", "/", 1)).parent / "trials" / trial_id)
    return config


def claim_intermediate(
    config: TransferConfig, settings: TrialSettings, owner: str, poll_s: float
) -> tuple[Path | None, Lease | None]:
    """The published intermediate encoder ``config`` asks for, or the lease to train the run that makes it.

    Waits while another trial holds the run's lease. The lease is the run's (its longest publish step,
    ``intermediate_run``): trials that want other lengths of the same run wait for it instead of training
    it again, and find their own entries, which it publishes on its way.
    """
    cache = CheckpointCache(settings.cache_root)
    found = cache.lookup(intermediate_key(config))
    if found is not None:
        return found, None
    found, lease = cache.wait_for(
        intermediate_key(intermediate_run(config)),
        poll_s=poll_s,
        timeout_s=settings.wait_timeout_s,
        ttl_s=settings.lease_ttl_s,
        owner=owner,
    )
    if found is not None:
        return cache.lookup(intermediate_key(config)), None
    return None, lease


def run_trial(params: dict[str, Any], settings: TrialSettings) -> None:
    """Tune's function trainable: plan the phases, wait for or lease the intermediate, fit the job."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    # Here, not at the top: the trainer stack (torch, DeepSpeed) is what a real trial needs, and importing
    # this module for TrialSettings or trial_config (the driver, a replayed trial) must not pay for it.
    from search.launch import ray_address_pinned, trainer_for
    from search.resources import runs_in_process
    from trainers.worker import Plan, run_in_trial

    trial_id = tune.get_context().get_trial_id()
    config = trial_config(settings, params, trial_id)
    plan = Plan(config, settings.cache_root)
    lease = None
    if config.intermediate is not None:
        found, lease = claim_intermediate(config, settings, trial_id, poll_s=2.0)
        plan.reuse_dir = str(found) if found is not None else None
        if lease is not None:
            lease.keep_alive(settings.lease_ttl_s / 3)
    try:
        plan.launched_at = time.time()
        if runs_in_process(config.scaling):
            # One worker: this process is it (Tune gave it the worker's resources); nothing to start.
            run_in_trial(plan)
            return
        trainer = trainer_for(
            plan,
            name=f"{settings.search}-{trial_id}",
            storage_path=settings.train_storage,
            callbacks=[TuneReportCallback()],
            max_failures=settings.max_failures,
        )
        with ray_address_pinned():
            result = trainer.fit()
        if result.error is not None:
            raise result.error
    finally:
        if lease is not None:
            lease.release()
