"""Retrieval targets in a search: evaluated on every encoder the search made, not searched.

A retrieval target (BUCC, Tatoeba) has no target phase and no dev metric a study could optimise: a trial
of its own would train an intermediate model only to evaluate retrieval on it, and Optuna would record it
as pruned. So a search gives it no study. After the trained targets' studies (or at once, when the search
has only retrieval targets), each retrieval target is evaluated once on the base encoder and once on every
intermediate checkpoint the search's trials used, and the scores form a table (``search/retrieval_table.py``).

Which checkpoints: those the search's trial runs in MLflow name. A trial's intermediate checkpoint is the
cache entry ``intermediate_key`` of its resolved config (its ``config.yaml`` artifact). The cache cannot say
which search published an entry (it is shared by searches and targets, and a trial may reuse an entry an
earlier search trained), while the trial runs are the search's own record, kept across ``--resume`` and
``--target`` invocations. The key depends on the searched point but not on its ``target.*`` values, so one
config is read per distinct searched intermediate point, not one per trial.

Each evaluation is one MLflow child run of the search's parent run, tagged ``xstilts.kind=retrieval``, its
target and ``xstilts.checkpoint`` (the key, or ``base``); it holds the worker's zero-shot metrics
(``zero_shot/<lang>``, ``zero_shot_avg``). ``--resume`` skips an evaluation whose run is completed and
repeats one that is not, in the same run. An evaluation runs the trials' per-worker function
(``trainers.worker.run_plan``) with the checkpoint given as the plan's ``reuse_dir``: a retrieval plan has no
target phase, and with its encoder given it has no intermediate phase to train either. One worker runs as a
Ray task (the worker's resources, like a trial's own actor); more as a Ray Train job, as a trial does.
A replayed search (``--replay``) answers them from the recorded grid.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import tracking
from search.results import ResultsError, Trial, load_config, load_trials
from search.space import SearchSpace
from trainers import keys
from trainers.checkpoint_cache import CheckpointCache, intermediate_key
from trainers.config import TransferConfig
from trainers.tasks import get_task

Evaluate = Callable[[TransferConfig, "Checkpoint"], dict[str, Any]]
"""Runs one evaluation and returns the worker's final metrics."""


@dataclass(frozen=True)
class Checkpoint:
    """An encoder a retrieval target is evaluated on: the base, or an intermediate checkpoint."""

    key: str
    """The cache key, or ``keys.BASE_CHECKPOINT``."""
    label: str
    """The intermediate configuration in words (``none`` for the base)."""
    searched: dict[str, str] = field(default_factory=dict)
    """The searched intermediate parameters of the trials that used it, as their runs logged them."""
    source: TransferConfig | None = None
    """The resolved config of a trial that used it (None: the base)."""
    path: str | None = None
    """Its published directory (None for the base, and in a replay)."""


@dataclass
class RetrievalOutcome:
    """What the evaluations of one retrieval target did."""

    search: str
    target: str
    evaluated: int = 0
    """Evaluations run now."""
    already: int = 0
    """Evaluations a previous run of the search had logged (``--resume``)."""
    failed: list[str] = field(default_factory=list)
    """Labels of the evaluations that raised (their runs are FAILED; ``--resume`` repeats them)."""
    missing: list[str] = field(default_factory=list)
    """Labels of checkpoints trials asked for that the cache does not hold (their trials failed before
    publishing, or the cache lost them): not evaluated."""
    scores: dict[str, float] = field(default_factory=dict)
    """Label -> ``zero_shot_avg`` of every completed evaluation, the base first."""

    def summary(self) -> list[str]:
        """The search summary's lines for this target."""
        count = len(self.scores)
        done = f"{count} encoder{'s' if count != 1 else ''} evaluated ({self.evaluated} now, {self.already} logged before)"
        lines = [f"{self.target}: retrieval target, no study: {done}"]
        base = self.scores.get(BASE_LABEL)
        for label, score in self.scores.items():
            gain = "" if base is None or label == BASE_LABEL else f" ({score - base:+.2f} over the base)"
            lines.append(f"  {label}: {keys.ZERO_SHOT_AVG}={score:.2f}{gain}")
        lines += [f"  FAILED: {label} (xstilts search --resume repeats it)" for label in self.failed]
        lines += [f"  not evaluated, no published checkpoint: {label}" for label in self.missing]
        return lines


BASE_LABEL = "none (base encoder)"
"""The base encoder's label."""


def is_retrieval(target: str) -> bool:
    """Whether ``target`` is a retrieval target (evaluated, not searched)."""
    return get_task(target).is_retrieval


def _label(searched: dict[str, str]) -> str:
    """``ccg (intermediate.max_steps=30)`` from a trial's searched intermediate parameters."""
    task = searched.get("intermediate_task")
    rest = ", ".join(f"{k}={v}" for k, v in sorted(searched.items()) if k != "intermediate_task")
    if task is None:
        return rest or "intermediate"
    return f"{task} ({rest})" if rest else task


def _searched_intermediate(trial: Trial) -> dict[str, str]:
    """The trial's searched values that can decide its intermediate checkpoint (all but ``target.*``)."""
    prefix = tracking.SEARCHED_PREFIX
    return {
        k[len(prefix) :]: v
        for k, v in trial.params.items()
        if k.startswith(prefix) and not k[len(prefix) :].startswith("target.")
    }


def used_checkpoints(
    client: Any, experiment: str, search: str, cache_root: str | None
) -> tuple[list[Checkpoint], list[str]]:
    """The distinct intermediate checkpoints the search's trials used, and the labels of those not published.

    ``cache_root`` None (a replay): every checkpoint counts, published or not; nothing is looked up.
    """
    groups: dict[tuple[tuple[str, str], ...], list[Trial]] = {}
    for trial in sorted(load_trials(client, experiment, search), key=lambda t: (t.start_time, t.run_id)):
        if trial.params:  # a run the driver lost before it logged anything describes nothing
            groups.setdefault(tuple(sorted(_searched_intermediate(trial).items())), []).append(trial)
    cache = CheckpointCache(cache_root) if cache_root is not None else None
    found: dict[str, Checkpoint] = {}
    missing: list[str] = []
    for searched, trials in groups.items():
        config = _first_config(client, trials)
        if config is None:
            missing.append(f"{_label(dict(searched))} (no trial's config.yaml could be read)")
            continue
        if config.intermediate is None:
            continue
        key = intermediate_key(config)
        label = _label(dict(searched))
        if key in found:
            continue
        path = cache.lookup(key) if cache is not None else None
        if cache is not None and path is None:
            missing.append(label)
            continue
        found[key] = Checkpoint(key, label, dict(searched), config, None if path is None else str(path))
    return sorted(found.values(), key=lambda c: c.label), missing


def _first_config(client: Any, trials: list[Trial]) -> TransferConfig | None:
    """The resolved config of the first of ``trials`` whose ``config.yaml`` artifact reads."""
    for trial in trials:
        try:
            return load_config(client, trial)
        except ResultsError:  # an upload lost with its trial: any other trial of the group will do
            continue
    return None


def evaluation_config(space: SearchSpace, target: str, checkpoint: Checkpoint) -> TransferConfig:
    """The config of one evaluation: the trial's that used the checkpoint, with the retrieval target's phase.

    Everything that decides the checkpoint (model, intermediate section, data, seed, scaling) is the trial's, so
    the evaluation's ``intermediate_key`` is the checkpoint's key; target and evaluation are the retrieval
    target's (its base settings; a retrieval target has none searched).
    """
    base = space.base_config(target)
    if checkpoint.source is None:
        return dataclasses.replace(base, intermediate=None)
    return dataclasses.replace(checkpoint.source, target=base.target, evaluation=base.evaluation)


# -- running one evaluation ----------------------------------------------------------------------------


def _run_one_worker(plan: dict[str, Any]) -> dict[str, Any]:
    """A Ray task's body: the plan in this process, as a one-worker trial's actor runs it."""
    from trainers.worker import Plan, run_local

    return run_local(Plan.from_dict(plan))


def evaluation_plan(config: TransferConfig, checkpoint: Checkpoint, cache_root: str) -> Any:
    """The worker's plan of one evaluation: the checkpoint given, so no intermediate phase can train."""
    from trainers.worker import Plan

    if config.intermediate is not None and checkpoint.path is None:
        raise ValueError(f"{checkpoint.label}: no published checkpoint to evaluate (it would be trained)")
    return Plan(config, cache_root, reuse_dir=checkpoint.path, launched_at=time.time())


def ray_evaluate(cache_root: str, train_storage: str, search: str, retries: int) -> Evaluate:
    """Evaluations on the cluster: one worker in a Ray task, more in a Ray Train job, through ``run_plan``."""

    def evaluate(config: TransferConfig, checkpoint: Checkpoint) -> dict[str, Any]:
        import ray

        plan = evaluation_plan(config, checkpoint, cache_root)
        scaling = config.scaling
        if scaling.num_workers == 1:
            task = ray.remote(_run_one_worker).options(
                num_cpus=scaling.cpus_per_worker, num_gpus=1 if scaling.use_gpu else 0, max_retries=retries
            )
            metrics: Any = ray.get(task.remote(plan.to_dict()))
            return dict(metrics)
        from search.launch import ray_address_pinned, trainer_for
        from search.run import read_results

        name = f"{search}-retrieval-{config.target.task}-{checkpoint.key[:16]}"
        with ray_address_pinned():
            result = trainer_for(plan, name, train_storage, max_failures=retries).fit()
        if result.error is not None:
            raise result.error
        return read_results(result.checkpoint)

    return evaluate


def replay_evaluate(grid: str) -> Evaluate:
    """Evaluations answered from a recorded grid (``xstilts search --replay``)."""
    from search.replay import retrieval_metrics

    def evaluate(config: TransferConfig, checkpoint: Checkpoint) -> dict[str, Any]:
        return retrieval_metrics(grid, config)

    return evaluate


# -- the runs --------------------------------------------------------------------------------------------


def _run_tags(search: str, target: str, checkpoint: Checkpoint) -> dict[str, str]:
    return {
        keys.SEARCH_TAG: search,
        keys.KIND_TAG: keys.KIND_RETRIEVAL,
        keys.TARGET_TAG: target,
        keys.CHECKPOINT_TAG: checkpoint.key,
    }


def evaluate_target(
    uri: str,
    experiment: str,
    parent: str,
    search: str,
    space: SearchSpace,
    target: str,
    checkpoints: list[Checkpoint],
    output_root: Path,
    evaluate: Evaluate,
) -> RetrievalOutcome:
    """Evaluate ``target`` on each checkpoint whose run is not completed yet; log each to its child run."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    outcome = RetrievalOutcome(search, target)
    for done, checkpoint in enumerate(checkpoints):
        tags = _run_tags(search, target, checkpoint)
        run_id = tracking.find_run(uri, experiment, tags)
        described = False
        if run_id is not None:
            run = client.get_run(run_id)
            if run.data.tags.get(keys.STATUS_TAG) == keys.COMPLETED:
                outcome.already += 1
                if keys.ZERO_SHOT_AVG in run.data.metrics:
                    outcome.scores[checkpoint.label] = run.data.metrics[keys.ZERO_SHOT_AVG]
                continue
            # Interrupted or failed before: evaluated again, into the same run.
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, keys.STATUS_TAG, keys.RUNNING)
            if keys.ERROR_TAG in run.data.tags:
                client.delete_tag(run_id, keys.ERROR_TAG)
            described = bool(run.data.params)
        else:
            tags.update(
                {
                    keys.INTERMEDIATE_TAG: checkpoint.label,
                    keys.STATUS_TAG: keys.RUNNING,
                    "mlflow.parentRunId": parent,
                }
            )
            name = f"{target}-{checkpoint.key[:12]}"
            run_id = str(client.create_run(experiment, run_name=name, tags=tags).info.run_id)
        config = evaluation_config(space, target, checkpoint)
        config.output_dir = str(output_root / target / checkpoint.key)
        if not described:
            resolved = config.to_dict()
            tracking.log_params(client, run_id, tracking.trial_params(resolved, checkpoint.searched))
            tracking.log_config(client, run_id, resolved)
        print(f"{target}: evaluating on {checkpoint.label} ({done + 1} of {len(checkpoints)})", flush=True)
        try:
            metrics = evaluate(config, checkpoint)
        except KeyboardInterrupt:
            client.set_terminated(run_id, status="KILLED")  # --resume evaluates it again, into this run
            raise
        except Exception as error:  # one encoder's failure leaves the others' evaluations to run
            client.set_tag(run_id, keys.ERROR_TAG, f"{type(error).__name__}: {error}".splitlines()[0][:5000])
            client.set_tag(run_id, keys.STATUS_TAG, keys.FAILED)
            client.set_terminated(run_id, status="FAILED")
            outcome.failed.append(checkpoint.label)
            print(f"{target}: the evaluation on {checkpoint.label} failed: {error}", flush=True)
            continue
        stamp = int(time.time() * 1000)
        values = [Metric(k, v, stamp, 0) for k, v in tracking.numeric_metrics(metrics).items()]
        for start in range(0, len(values), 1000):
            client.log_batch(run_id, metrics=values[start : start + 1000])
        client.set_tag(run_id, keys.STATUS_TAG, keys.COMPLETED)
        client.set_terminated(run_id, status="FINISHED")
        outcome.evaluated += 1
        if keys.ZERO_SHOT_AVG in metrics:
            outcome.scores[checkpoint.label] = float(metrics[keys.ZERO_SHOT_AVG])
    return outcome


def evaluate_retrieval_targets(
    uri: str,
    experiment: str,
    parent: str,
    search: str,
    space: SearchSpace,
    targets: list[str],
    cache_root: str | None,
    output_root: Path,
    evaluate: Evaluate,
) -> list[RetrievalOutcome]:
    """Evaluate every retrieval target of ``targets`` on the base and on each checkpoint the search used."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    used, missing = used_checkpoints(client, experiment, search, cache_root)
    base = Checkpoint(keys.BASE_CHECKPOINT, BASE_LABEL)
    outcomes = []
    for target in targets:
        outcome = evaluate_target(
            uri, experiment, parent, search, space, target, [base, *used], output_root, evaluate
        )
        outcome.missing = list(missing)
        outcomes.append(outcome)
    return outcomes


__all__ = [
    "BASE_LABEL",
    "Checkpoint",
    "RetrievalOutcome",
    "evaluate_retrieval_targets",
    "evaluate_target",
    "evaluation_config",
    "evaluation_plan",
    "is_retrieval",
    "ray_evaluate",
    "replay_evaluate",
    "used_checkpoints",
]
