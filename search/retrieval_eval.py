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
target phase, and with its encoder given it has no intermediate phase to train either. Each is a Ray task that
holds what a trial's own actor holds and runs the plan as a trial does: its one worker in the task itself
(``scaling.worker_group: auto``), or a Ray Train job it waits on; as many at once as trials run, every result
logged by the driver alone. A replayed search (``--replay``) answers them from the recorded grid.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
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


# -- running evaluations --------------------------------------------------------------------------------


Job = tuple[TransferConfig, Checkpoint]
"""One evaluation to run: its config and the encoder it reads."""
Runner = Callable[[list[Job]], Iterator[tuple[int, "dict[str, Any] | Exception"]]]
"""Runs evaluations and yields ``(index, final metrics or the error)`` for each as it ends, in any order."""


def evaluation_plan(config: TransferConfig, checkpoint: Checkpoint, cache_root: str) -> Any:
    """The worker's plan of one evaluation: the checkpoint given, so no intermediate phase can train."""
    from trainers.worker import Plan

    if config.intermediate is not None and checkpoint.path is None:
        raise ValueError(f"{checkpoint.label}: no published checkpoint to evaluate (it would be trained)")
    return Plan(config, cache_root, reuse_dir=checkpoint.path, launched_at=time.time())


def _run_evaluation(plan: dict[str, Any], name: str, train_storage: str, retries: int) -> dict[str, Any]:
    """A Ray task's body, as a trial's actor runs its plan: one worker here, or a Ray Train job it waits on."""
    from search.resources import runs_in_process
    from trainers.worker import Plan, run_local

    parsed = Plan.from_dict(plan)
    if runs_in_process(parsed.config.scaling):
        return run_local(parsed)
    from search.launch import ray_address_pinned, trainer_for
    from search.run import read_results

    with ray_address_pinned():
        result = trainer_for(parsed, name, train_storage, max_failures=retries).fit()
    if result.error is not None:
        raise result.error
    return read_results(result.checkpoint)


def sequential(evaluate: Callable[[TransferConfig, Checkpoint], dict[str, Any]]) -> Runner:
    """A runner that calls ``evaluate`` on each job in turn, in this process."""

    def run(jobs: list[Job]) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        for index, (config, checkpoint) in enumerate(jobs):
            try:
                yield index, evaluate(config, checkpoint)
            except Exception as error:
                yield index, error

    return run


def ray_runner(
    cache_root: str,
    train_storage: str,
    search: str,
    retries: int,
    resources: dict[str, float],
    concurrent: int,
) -> Runner:
    """Evaluations on the cluster, ``concurrent`` at a time, each a Ray task holding what a trial's actor holds
    (``resources``): the worker's, when it runs the one worker itself; else a sliver beside its Train job."""

    def run(jobs: list[Job]) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        import ray

        custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
        task = ray.remote(_run_evaluation).options(
            num_cpus=resources.get("CPU", 0.0),
            num_gpus=resources.get("GPU", 0.0),
            resources=custom or None,
            max_retries=retries,  # a lost node; a worker's exception is the evaluation's failure
        )
        waiting = list(enumerate(jobs))
        running: dict[Any, int] = {}
        try:
            while waiting or running:
                while waiting and len(running) < max(1, concurrent):
                    index, (config, checkpoint) = waiting.pop(0)
                    try:
                        plan = evaluation_plan(config, checkpoint, cache_root).to_dict()
                    except ValueError as error:
                        yield index, error
                        continue
                    name = f"{search}-retrieval-{config.target.task}-{checkpoint.key[:16]}"
                    running[task.remote(plan, name, train_storage, retries)] = index
                if not running:
                    continue
                (ready,), _ = ray.wait(list(running), num_returns=1)
                index = running.pop(ready)
                try:
                    yield index, dict(ray.get(ready))
                except ray.exceptions.RayError as error:
                    cause = error.cause if isinstance(error, ray.exceptions.RayTaskError) else None
                    yield index, cause if isinstance(cause, Exception) else error
        finally:  # interrupted (Ctrl-C): the evaluations still running are stopped
            for ref in running:
                ray.cancel(ref, force=True)

    return run


def replay_runner(grid: str) -> Runner:
    """Evaluations answered from a recorded grid (``xstilts search --replay``)."""
    from search.replay import retrieval_metrics

    return sequential(lambda config, checkpoint: retrieval_metrics(grid, config))


# -- the runs --------------------------------------------------------------------------------------------


def _run_tags(search: str, target: str, checkpoint: Checkpoint) -> dict[str, str]:
    return {
        keys.SEARCH_TAG: search,
        keys.KIND_TAG: keys.KIND_RETRIEVAL,
        keys.TARGET_TAG: target,
        keys.CHECKPOINT_TAG: checkpoint.key,
    }


@dataclass
class _Pending:
    """An evaluation whose run is open and that is still to run."""

    outcome: RetrievalOutcome
    checkpoint: Checkpoint
    run_id: str
    config: TransferConfig


def _open_runs(
    client: Any,
    uri: str,
    experiment: str,
    parent: str,
    space: SearchSpace,
    outcome: RetrievalOutcome,
    checkpoints: list[Checkpoint],
    output_root: Path,
) -> list[_Pending]:
    """The evaluations of ``outcome.target`` still to run, their runs created or re-opened; completed ones counted."""
    target = outcome.target
    pending = []
    for checkpoint in checkpoints:
        tags = _run_tags(outcome.search, target, checkpoint)
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
        pending.append(_Pending(outcome, checkpoint, run_id, config))
    return pending


def _log_result(client: Any, job: _Pending, result: dict[str, Any] | Exception) -> None:
    """Close the evaluation's run: its metrics and COMPLETED, or FAILED with the error's first line."""
    from mlflow.entities import Metric

    outcome, label = job.outcome, job.checkpoint.label
    if isinstance(result, Exception):
        client.set_tag(
            job.run_id, keys.ERROR_TAG, f"{type(result).__name__}: {result}".splitlines()[0][:5000]
        )
        client.set_tag(job.run_id, keys.STATUS_TAG, keys.FAILED)
        client.set_terminated(job.run_id, status="FAILED")
        outcome.failed.append(label)
        print(f"{outcome.target}: the evaluation on {label} failed: {result}", flush=True)
        return
    stamp = int(time.time() * 1000)
    values = [Metric(k, v, stamp, 0) for k, v in tracking.numeric_metrics(result).items()]
    for start in range(0, len(values), 1000):
        client.log_batch(job.run_id, metrics=values[start : start + 1000])
    client.set_tag(job.run_id, keys.STATUS_TAG, keys.COMPLETED)
    client.set_terminated(job.run_id, status="FINISHED")
    outcome.evaluated += 1
    if keys.ZERO_SHOT_AVG in result:
        outcome.scores[label] = float(result[keys.ZERO_SHOT_AVG])
        print(f"{outcome.target}: {label}: {keys.ZERO_SHOT_AVG}={result[keys.ZERO_SHOT_AVG]:.2f}", flush=True)


def evaluate_retrieval_targets(
    uri: str,
    experiment: str,
    parent: str,
    search: str,
    space: SearchSpace,
    targets: list[str],
    cache_root: str | None,
    output_root: Path,
    run: Runner,
) -> list[RetrievalOutcome]:
    """Evaluate every retrieval target of ``targets`` on the base and on each checkpoint the search used."""
    from mlflow.tracking import MlflowClient

    used, missing = used_checkpoints(MlflowClient(tracking_uri=uri), experiment, search, cache_root)
    checkpoints = [Checkpoint(keys.BASE_CHECKPOINT, BASE_LABEL), *used]
    outcomes = evaluate_checkpoints(
        uri, experiment, parent, search, space, targets, checkpoints, output_root, run
    )
    for outcome in outcomes:
        outcome.missing = list(missing)
    return outcomes


def evaluate_checkpoints(
    uri: str,
    experiment: str,
    parent: str,
    search: str,
    space: SearchSpace,
    targets: list[str],
    checkpoints: list[Checkpoint],
    output_root: Path,
    run: Runner,
) -> list[RetrievalOutcome]:
    """Evaluate each of ``targets`` on each of ``checkpoints``, one child run of ``parent`` each.

    Evaluations whose run is completed are skipped (``--resume``); the others run through ``run`` (several at
    once on a cluster), and each is logged as it ends, by this process alone.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    outcomes = [RetrievalOutcome(search, target) for target in targets]
    pending = [
        job
        for outcome in outcomes
        for job in _open_runs(client, uri, experiment, parent, space, outcome, checkpoints, output_root)
    ]
    for outcome in outcomes:
        mine = [job.checkpoint.label for job in pending if job.outcome is outcome]
        if mine:
            print(f"{outcome.target}: evaluating on {len(mine)} encoders: {'; '.join(mine)}", flush=True)
    ended: set[int] = set()
    try:
        for index, result in run([(job.config, job.checkpoint) for job in pending]):
            _log_result(client, pending[index], result)
            ended.add(index)
    except KeyboardInterrupt:
        for index, job in enumerate(pending):
            if index not in ended:  # --resume evaluates them again, into these runs
                client.set_terminated(job.run_id, status="KILLED")
        raise
    order = {c.label: i for i, c in enumerate(checkpoints)}
    for outcome in outcomes:  # the base first, then in the checkpoints' order, whatever order they ended in
        outcome.scores = dict(sorted(outcome.scores.items(), key=lambda kv: order.get(kv[0], len(order))))
    return outcomes


__all__ = [
    "BASE_LABEL",
    "Checkpoint",
    "RetrievalOutcome",
    "Runner",
    "evaluate_checkpoints",
    "evaluate_retrieval_targets",
    "evaluation_config",
    "evaluation_plan",
    "is_retrieval",
    "ray_runner",
    "replay_runner",
    "sequential",
    "used_checkpoints",
]
