"""The estimate of a whole search: expected intermediate trainings with the cache's reuse, compute, memory,
and the paper's grid over the same tasks and targets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from search.costs._phase import (
    CostAssumptions,
    Draw,
    PhaseCost,
    asha_expected_steps,
    checkpoint_key,
    draws,
    phase_cost,
    representative,
    train_examples,
    uniform_values,
)
from search.space import (
    INTERMEDIATE_TASK,
    NO_INTERMEDIATE,
    CategoricalParam,
    Param,
    SearchSpace,
)
from trainers.checkpoint_cache import intermediate_run
from trainers.config import TargetConfig, TransferConfig
from trainers.memory import MemoryPlan, memory_plan
from trainers.tasks import get_task


@dataclass
class IntermediateClass:
    """One intermediate configuration (or, for a continuum, one family of them) a random trial may draw."""

    label: str
    """What it is, e.g. ``mnli max_steps=6000``."""
    cost: PhaseCost | None
    """The compute of training it once."""
    continuous: bool
    """A continuous parameter enters its key: every draw is a new configuration."""
    probability: dict[str, float] = field(default_factory=dict)
    """Target -> chance that one random trial of that study draws it."""


@dataclass
class Estimate:
    """The counts and compute of one search, and of the paper's grid over the same tasks and targets."""

    targets: list[str]
    """The search's targets: the studies' and the retrieval targets."""
    trials: dict[str, int]
    """Trained target (one study each) -> trials (num_samples)."""
    seeded: dict[str, int]
    """Target -> seeded points that run (a point leaving a key parameter to the sampler counts as random)."""
    key_params: list[str]
    """Searched parameters that enter the intermediate-checkpoint key."""
    continuous_key_params: list[str]
    """Those of them that are a continuum."""
    distinct_configs: int | None
    """Distinct intermediate configurations the space allows (None: unbounded)."""
    trials_with_intermediate: float
    """Expected trials that have an intermediate phase."""
    trainings: float
    """Expected intermediate trainings with the cache's reuse."""
    trainings_bound: float
    """At most this many: min(trials with an intermediate phase, distinct configurations)."""
    intermediate_gpu_hours: float | None
    """Expected GPU-hours of the intermediate trainings, with reuse."""
    intermediate_gpu_hours_no_reuse: float | None
    """The same if every trial trained its own."""
    target_gpu_hours: float | None
    """Expected GPU-hours of the target phases, under the space's scheduler."""
    grid_tasks: list[str]
    """The grid's intermediate tasks."""
    grid_trainings: int
    """Distinct intermediate trainings of the grid."""
    grid_target_runs: int
    """Target fine-tunings of the grid."""
    grid_intermediate_gpu_hours: float | None
    """GPU-hours of the grid's intermediate trainings."""
    grid_target_gpu_hours: float | None
    """GPU-hours of the grid's target fine-tunings."""
    grid_intermediate_costs: dict[str, PhaseCost | None]
    """Intermediate task -> its one training in the grid."""
    grid_target_costs: dict[str, PhaseCost | None]
    """Trained target -> one full fine-tuning at its seeded settings."""
    asha_steps: dict[str, float]
    """Trained target -> expected target steps of a seeded-settings trial under the scheduler."""
    train_examples: dict[str, int | None]
    """Task -> the train examples its phase reads at the seeded settings (None: unknown)."""
    assumptions: CostAssumptions
    """What the GPU-hours rest on."""
    memory: dict[str, tuple[MemoryPlan, str]] = field(default_factory=dict)
    """Phase (intermediate, target) -> the largest memory plan of any trial's phase, and which trial."""
    memory_by_encoder: dict[str, dict[str, tuple[MemoryPlan, str]]] = field(default_factory=dict)
    """Encoder -> ``memory`` over that encoder's trials only (engine settings may differ per encoder)."""
    device: str = "cuda"
    """Where the trials train (``cuda`` when ``scaling.use_gpu``)."""
    checkpoints_used: float = 0.0
    """Expected distinct intermediate checkpoints the trials use (a run publishing several lengths makes
    several): what each retrieval target is evaluated on, besides the base."""
    checkpoints_bound: int | None = None
    """At most this many (None: unbounded, a continuous key parameter)."""

    @property
    def studies(self) -> list[str]:
        """The targets that get an Optuna study (the trained ones)."""
        return [target for target in self.targets if target in self.trials]

    @property
    def retrieval_targets(self) -> list[str]:
        """The targets evaluated on each checkpoint instead of searched (``search/retrieval_eval.py``)."""
        return [target for target in self.targets if target not in self.trials]

    @property
    def evaluations_per_retrieval_target(self) -> float:
        """Expected evaluations of each retrieval target: the base, and each checkpoint the trials use."""
        return 1.0 + self.checkpoints_used

    @property
    def gpu_hours(self) -> float | None:
        """This search's expected total."""
        return sum_known(self.intermediate_gpu_hours, self.target_gpu_hours)

    @property
    def grid_gpu_hours(self) -> float | None:
        """The grid's total."""
        return sum_known(self.grid_intermediate_gpu_hours, self.grid_target_gpu_hours)


def sum_known(*parts: float | None) -> float | None:
    """The sum of ``parts``; None if any is unknown."""
    return None if any(part is None for part in parts) else sum(part for part in parts if part is not None)


def _target_cost(config: TransferConfig, assumptions: CostAssumptions) -> PhaseCost | None:
    if get_task(config.target.task).is_retrieval:
        return PhaseCost(0.0, 0.0, 0.0, 0.0, config.scaling.num_workers)
    return phase_cost(config, config.target, [config.target.task], assumptions)


def _intermediate_cost(config: TransferConfig, assumptions: CostAssumptions) -> PhaseCost | None:
    run = intermediate_run(config)  # the run that serves it: to the longest of its publish_steps
    assert run.intermediate is not None
    return phase_cost(run, run.intermediate, list(run.intermediate.tasks), assumptions)


def entry_key(config: TransferConfig) -> str:
    """The key of the checkpoint ``config`` uses (``checkpoint_key`` is its run's: one run publishes several)."""
    assert config.intermediate is not None
    # The run's key at this trial's own length: the entry that length publishes.
    own = dataclasses.replace(config.intermediate, publish_steps=[])
    return checkpoint_key(dataclasses.replace(config, intermediate=own))


def _label(config: TransferConfig, params: Mapping[str, Any]) -> str:
    assert config.intermediate is not None
    extra = [
        f"{name.split('.', 1)[1]}={value:g}"
        if isinstance(value, float)
        else f"{name.split('.', 1)[1]}={value}"
        for name, value in params.items()
        if name.startswith("intermediate.")
    ]
    return " ".join([config.intermediate.name, *extra])


def _point_label(params: Mapping[str, Any]) -> str:
    """The phase-relevant part of a point, e.g. ``intermediate_task=mnli target.batch_size=16``."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _fixed_points(space: SearchSpace, target: str, key_names: set[str]) -> list[dict[str, Any]]:
    """The seeded points of ``target``'s study that fix every active key parameter, at most num_samples."""
    fixed = []
    by_name = {param.name: param for param in space.params}
    for point in space.points_for(target)[: space.tuner.num_samples]:
        assigned = space._assign(target, _seeded_pick(point, None, default=_MISSING))
        if any(value is _MISSING and name in key_names for name, value in assigned.items()):
            continue
        fixed.append({n: (representative(by_name[n]) if v is _MISSING else v) for n, v in assigned.items()})
    return fixed


def _device(config: TransferConfig) -> Literal["cuda", "cpu"]:
    return "cuda" if config.scaling.use_gpu else "cpu"


def _keep_largest(
    memory: dict[str, tuple[MemoryPlan, str]],
    phase: str,
    config: TransferConfig,
    params: Mapping[str, Any],
    by_encoder: dict[str, dict[str, tuple[MemoryPlan, str]]] | None = None,
) -> None:
    """Record ``config``'s plan for ``phase`` if it is the largest so far (``params``: its point), and in
    ``by_encoder`` if it is the largest of its encoder."""
    section = config.intermediate if phase == "intermediate" else config.target
    if section is None or (phase == "target" and get_task(config.target.task).is_retrieval):
        return
    tasks = (
        list(config.intermediate.tasks)
        if phase == "intermediate" and config.intermediate
        else [config.target.task]
    )
    plan = memory_plan(config, section, tasks, _device(config))
    if plan is not None and by_encoder is not None:
        mine = by_encoder.setdefault(config.model.name_or_path, {})
        _keep_largest(mine, phase, config, params)
    if plan is not None and (phase not in memory or plan.total > memory[phase][0].total):
        # Name the trial by what sizes its memory: the phase's discrete settings, not learning rates.
        shown = {
            k: v
            for k, v in params.items()
            if (k.startswith((phase, "model.", "deepspeed.")) and not isinstance(v, float))
            or k == INTERMEDIATE_TASK == phase + "_task"
        }
        memory[phase] = (plan, f"{config.target.task}: {_point_label(shown) or 'the base settings'}")


def _is_task(param: Param) -> bool:
    return param.name == INTERMEDIATE_TASK


class _ConfigBuilder:
    """``space.to_transfer_config`` for many points of one study that differ only in a few keys.

    Building a config from a dict is the slow part of an estimate (milliseconds each, hundreds of points):
    a point that differs from the last full build only in ``target.<field>`` values is that build with
    its target section replaced (``replace`` runs the same validation).
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.last: dict[str, tuple[dict[str, Any], TransferConfig]] = {}
        self.fields = {f.name for f in dataclasses.fields(TargetConfig)}

    def __call__(self, params: Mapping[str, Any], target: str) -> TransferConfig:
        """The config of ``params`` in ``target``'s study."""
        previous = self.last.get(target)
        if previous is not None:
            before, config = previous
            changed = {k for k in {*before, *params} if before.get(k, _UNSET) != params.get(k, _UNSET)}
            names = {k.split(".", 1)[1] for k in changed if k.startswith("target.")}
            if all(k.startswith("target.") and k in params for k in changed) and names <= self.fields:
                updates = {k.split(".", 1)[1]: params[k] for k in changed}
                return dataclasses.replace(config, target=dataclasses.replace(config.target, **updates))
        config = self.space.to_transfer_config(params, target)
        self.last[target] = (dict(params), config)
        return config


_UNSET = object()
_MISSING = object()


def _enters_key(space: SearchSpace, param: Param, draw: Draw, target: str) -> bool:
    """Whether changing ``param`` (active in ``draw``) changes the intermediate-checkpoint key."""
    keys = set()
    for side in (0, 1):
        config = space.to_transfer_config({**draw.params, param.name: param.corner(side)}, target)
        if config.intermediate is None:
            return param.name == INTERMEDIATE_TASK
        keys.add(checkpoint_key(config))
    return len(keys) > 1


def estimate(
    space: SearchSpace, targets: list[str] | None = None, assumptions: CostAssumptions | None = None
) -> Estimate:
    """Count and cost ``space``'s search (its ``targets``, default all) and the paper's grid."""
    assumptions = assumptions or CostAssumptions()
    targets = list(targets or space.targets)
    for target in targets:
        space.check_target(target)

    # Which searched parameters enter the key: intermediate_task does by definition; others if moving
    # them moves the key in a draw where they are active (the key's fields are read, not listed, here).
    build = _ConfigBuilder(space)
    key_names: set[str] = set()
    for param in space.params:
        if param.name.startswith("target."):
            continue
        for target in targets:
            active = (d for d in draws(space, target, _is_task) if param.name in d.params)
            with_inter = next((d for d in active if build(d.params, target).intermediate), None)
            if with_inter is not None and _enters_key(space, param, with_inter, target):
                key_names.add(param.name)
                break
    by_name = {param.name: param for param in space.params}
    key_params = [p.name for p in space.params if p.name in key_names]
    continuous_keys = [name for name in key_params if uniform_values(by_name[name]) is None]

    classes: dict[str, IntermediateClass] = {}
    seeded_keys: dict[str, PhaseCost | None] = {}
    trials: dict[str, int] = {}
    seeded: dict[str, int] = {}
    random_trials: dict[str, int] = {}
    seen: dict[frozenset[tuple[str, Any]], tuple[str, PhaseCost | None, str, str] | None] = {}
    memory: dict[str, tuple[MemoryPlan, str]] = {}
    by_encoder: dict[str, dict[str, tuple[MemoryPlan, str]]] = {}
    with_intermediate = 0.0
    no_reuse_hours: float | None = 0.0
    target_hours: float | None = 0.0
    # Evaluated per checkpoint, not searched: no trials, so no draws of their own.
    trained = [target for target in targets if not get_task(target).is_retrieval]
    entries: dict[
        str, dict[str, float]
    ] = {}  # checkpoint (not run) key -> target -> P(a random trial uses it)
    seeded_entries: set[str] = set()
    continuous_entries = 0.0
    for target in trained:
        fixed = _fixed_points(space, target, key_names)
        trials[target] = space.tuner.num_samples
        seeded[target] = len(fixed)
        random_trials[target] = n = space.tuner.num_samples - len(fixed)
        for point in fixed:
            config = space.to_transfer_config(point, target)
            for phase in ("intermediate", "target"):
                _keep_largest(memory, phase, config, point, by_encoder)
            target_hours = _add_hours(target_hours, _target_cost(config, assumptions), space, 1.0)
            if config.intermediate is not None:
                with_intermediate += 1
                cost = _intermediate_cost(config, assumptions)
                seeded_keys[checkpoint_key(config)] = cost
                seeded_entries.add(entry_key(config))
                no_reuse_hours = sum_known(no_reuse_hours, None if cost is None else cost.gpu_hours)
        for draw in draws(space, target, lambda p: not p.name.startswith("target.")):
            # The key and the intermediate phase do not depend on the target: each is worked out once.
            shared = frozenset((k, v) for k, v in draw.params.items() if not k.startswith("target."))
            if shared not in seen:
                config = build(draw.params, target)
                seen[shared] = None
                if config.intermediate is not None:
                    _keep_largest(memory, "intermediate", config, draw.params, by_encoder)
                    seen[shared] = (
                        checkpoint_key(config),
                        _intermediate_cost(config, assumptions),
                        _label(config, draw.params),
                        entry_key(config),
                    )
            found = seen[shared]
            if found is None:
                continue
            key, cost, label, used_key = found
            with_intermediate += n * draw.probability
            no_reuse_hours = sum_known(
                no_reuse_hours, None if cost is None else n * draw.probability * cost.gpu_hours
            )
            continuous = bool(draw.continuous & key_names)
            klass = classes.setdefault(key, IntermediateClass(label, cost, continuous))
            klass.probability[target] = klass.probability.get(target, 0.0) + draw.probability
            if continuous:
                continuous_entries += n * draw.probability
            else:
                used = entries.setdefault(used_key, {})
                used[target] = used.get(target, 0.0) + draw.probability
        target_draws = draws(space, target, lambda p: not p.name.startswith("intermediate"))
        for draw in target_draws:
            config = build(draw.params, target)
            _keep_largest(memory, "target", config, draw.params, by_encoder)
            target_hours = _add_hours(
                target_hours, _target_cost(config, assumptions), space, n * draw.probability
            )

    trainings = float(len(seeded_keys))
    inter_hours: float | None = sum(c.gpu_hours for c in seeded_keys.values() if c is not None)
    if any(c is None for c in seeded_keys.values()):
        inter_hours = None
    finite = 0
    for key, entry in classes.items():
        if entry.continuous:
            expected = sum(random_trials[t] * p for t, p in entry.probability.items())
        else:
            finite += key not in seeded_keys
            if key in seeded_keys:
                continue
            missed = math.prod((1.0 - p) ** random_trials[t] for t, p in entry.probability.items())
            expected = 1.0 - missed
        trainings += expected
        inter_hours = sum_known(inter_hours, None if entry.cost is None else expected * entry.cost.gpu_hours)
    unbounded = any(entry.continuous for entry in classes.values())
    distinct = None if unbounded else len(seeded_keys) + finite
    bound = with_intermediate if distinct is None else min(with_intermediate, float(distinct))

    # Distinct checkpoints used: each seeded one, each finite one some random trial draws, one per continuous draw.
    checkpoints = len(seeded_entries) + continuous_entries
    for checkpoint, probability in entries.items():
        if checkpoint not in seeded_entries:
            checkpoints += 1.0 - math.prod((1.0 - p) ** random_trials[t] for t, p in probability.items())
    checkpoints_bound = None if unbounded else len(seeded_entries | set(entries))

    grid = _grid(space, targets, assumptions)
    return Estimate(
        targets=targets,
        trials=trials,
        seeded=seeded,
        key_params=key_params,
        continuous_key_params=continuous_keys,
        distinct_configs=distinct,
        trials_with_intermediate=with_intermediate,
        trainings=trainings,
        trainings_bound=bound,
        intermediate_gpu_hours=inter_hours,
        intermediate_gpu_hours_no_reuse=no_reuse_hours,
        target_gpu_hours=target_hours,
        assumptions=assumptions,
        memory=memory,
        memory_by_encoder=by_encoder,
        device=_device(space.base_config(targets[0])),
        checkpoints_used=checkpoints,
        checkpoints_bound=checkpoints_bound,
        **grid,
    )


def _add_hours(
    total: float | None, cost: PhaseCost | None, space: SearchSpace, weight: float
) -> float | None:
    """``total`` plus ``weight`` runs of a target phase cut by the space's scheduler."""
    if total is None or cost is None:
        return None
    return total + weight * cost.scaled(asha_expected_steps(cost.steps, space.tuner.scheduler)).gpu_hours


def _seeded_pick(seeded: Mapping[str, Any], task: str | None, default: Any = None) -> Callable[[Param], Any]:
    """Pick the seeded value of each parameter (``default``, else its middle, if none is seeded), with
    ``task`` as the intermediate task when given."""

    def pick(param: Param) -> Any:
        if param.name == INTERMEDIATE_TASK and task is not None:
            return task
        if param.name in seeded:
            return seeded[param.name]
        return representative(param) if default is None else default

    return pick


def _grid(space: SearchSpace, targets: list[str], assumptions: CostAssumptions) -> dict[str, Any]:
    """The paper's grid over the space's intermediate tasks and targets, at the seeded settings."""
    if INTERMEDIATE_TASK in space.param_names:
        choices = space.param(INTERMEDIATE_TASK)
        assert isinstance(choices, CategoricalParam)
        tasks = [str(c) for c in choices.choices if c != NO_INTERMEDIATE]
        runs_per_target = len(choices.choices)
    else:
        tasks, runs_per_target = [], 1
    intermediate_costs: dict[str, PhaseCost | None] = {}
    target_costs: dict[str, PhaseCost | None] = {}
    asha_steps: dict[str, float] = {}
    keys: dict[str, PhaseCost | None] = {}
    examples: dict[str, int | None] = {}
    target_hours: float | None = 0.0
    runs = 0
    for target in targets:
        # The seeded settings: the first point's, then what later points add (the intermediate ones).
        merged: dict[str, Any] = {}
        for point in space.points_for(target):
            merged = {**point, **merged}
        picks: list[str | None] = [*tasks] or [None]
        for task in picks:
            config = space.to_transfer_config(space._assign(target, _seeded_pick(merged, task)), target)
            if config.intermediate is not None:
                examples.update({t: train_examples(t, config) for t in config.intermediate.tasks})
                key = checkpoint_key(config)
                keys[key] = intermediate_costs[config.intermediate.name] = _intermediate_cost(
                    config, assumptions
                )
        if get_task(target).is_retrieval:
            continue
        baseline = space.to_transfer_config(space._assign(target, _seeded_pick(merged, None)), target)
        cost = _target_cost(baseline, assumptions)
        trains_on = get_task(target).train_task
        examples[f"{target} ({trains_on})" if trains_on else target] = train_examples(target, baseline)
        target_costs[target] = cost
        runs += runs_per_target
        if cost is not None:
            asha_steps[target] = asha_expected_steps(cost.steps, space.tuner.scheduler)
        target_hours = sum_known(target_hours, None if cost is None else runs_per_target * cost.gpu_hours)
    inter_hours = sum_known(*(None if c is None else c.gpu_hours for c in keys.values())) if keys else 0.0
    return {
        "grid_tasks": tasks,
        "grid_trainings": len(keys),
        "grid_target_runs": runs,
        "grid_intermediate_gpu_hours": inter_hours,
        "grid_target_gpu_hours": target_hours,
        "grid_intermediate_costs": intermediate_costs,
        "grid_target_costs": target_costs,
        "asha_steps": asha_steps,
        "train_examples": examples,
    }
