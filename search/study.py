"""One target's study, as the driver builds it: its scheduler, its searcher, and what it found.

``search/tuner.py`` runs the studies; this module holds how each is made (ASHA or FIFO, TPE behind the
proposal rules of ``search/searcher.py``) and how its results are summed up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.layout import SearchLayout
from search.searcher import CachedCheckpoints, Proposer, ProposingOptunaSearch
from search.space import DefineByRun, SearchSpace
from trainers import keys


@dataclass
class StudyOutcome:
    """What one target's study found."""

    search: str
    target: str
    trials: int
    completed: int
    early_stopped: int
    failed: int
    best: dict[str, Any] | None


def scheduler(space: SearchSpace) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    settings = space.tuner.scheduler
    if settings.type == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr=settings.time_attr,
        max_t=settings.max_t,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )


def searcher(
    space: SearchSpace,
    target: str,
    layout: SearchLayout,
    cache_root: str,
    first: list[dict[str, Any]] | None = None,
    warm_from: tuple[str, ...] = (),
    hold_waiting: bool = False,
) -> Any:
    """The study's searcher: TPE, its proposals through the rules of ``search/searcher.py``.

    ``first``: points tried before the space's own (an earlier search's, ``--warm-start SEARCH``);
    ``warm_from``: the studies whose leaders it tries as they appear (``--warm-start``); the search's
    trial slots are shared with the other studies through the gate registered under its local root;
    ``hold_waiting``: trials hold their worker's GPU from the start (in-process), so a proposal that would
    wait for another trial's intermediate checkpoint is held back until it is published.
    """
    import optuna

    points = list(first or [])
    points += [point for point in space.points_for(target) if point not in points]
    sampler = optuna.samplers.TPESampler(
        seed=space.tuner.sampler_seed,
        multivariate=True,
        group=True,  # conditional parameters (intermediate lr only with an intermediate task)
        # The seeded points plus a few random trials before TPE models the space.
        n_startup_trials=len(points) + 2,
    )
    storage = optuna.storages.RDBStorage(layout.optuna_url)
    proposer = Proposer(
        space,
        target,
        CachedCheckpoints(space, target, cache_root),
        refine=space.tuner.refine,
        seed=space.tuner.sampler_seed,
        warm_from=warm_from,
    )
    return ProposingOptunaSearch(
        proposer,
        gate=str(layout.local_root),
        hold_waiting=hold_waiting,
        space=DefineByRun(space, target),
        metric=space.tuner.metric,
        mode=space.tuner.mode,
        points_to_evaluate=points or None,
        sampler=sampler,
        study_name=layout.study_name(target),
        storage=storage,
    )


def outcome(search: str, target: str, results: Any, metric: str, mode: str) -> StudyOutcome:
    rows = []
    for result in results:
        metrics = result.metrics or {}
        rows.append((result, metrics))
    completed = [(r, m) for r, m in rows if m.get(keys.FINISHED) == 1.0 and r.error is None]
    failed = sum(1 for r, _ in rows if r.error is not None)
    best = None
    if completed:
        sign = 1 if mode == "max" else -1
        result, metrics = max(
            completed, key=lambda rm: (sign * rm[1].get(metric, float("-inf")), rm[1]["trial_id"])
        )
        best = {
            "trial_id": metrics.get("trial_id"),
            "config": result.config,
            **{
                k: metrics.get(k) for k in (metric, keys.ZERO_SHOT_AVG, keys.EN_DEV, keys.INTERMEDIATE_REUSED)
            },
        }
    return StudyOutcome(
        search,
        target,
        len(rows),
        len(completed),
        len(rows) - len(completed) - failed,
        failed,
        best,
    )
