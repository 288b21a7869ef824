"""A search on paper: what ``xstilts search --dry-run`` prints before anything starts.

Counts come from the space alone: its studies, trials and seeded points, and the distributions of the
parameters that enter the intermediate-checkpoint key (``trainers.checkpoint_cache.key_fields``). Compute
comes from a FLOPs model of the encoder, the task registry's train-set sizes (``TaskSpec.train_size``) and
each phase's steps, batch and sequence length. Every assumption is a field of ``CostAssumptions`` or a rule
in ``RULES`` and is printed with the estimate.

How a search is counted (the rules, printed too):

* A trial that is not a seeded point draws every active parameter uniformly (Optuna's random start-up
  distribution; TPE later concentrates its draws, which makes finite configurations repeat *more*).
* An intermediate configuration is trained once, whichever target's trial first wants it; every later
  trial that draws the same key reuses it (the cache's lease-and-publish). A seeded configuration is
  trained once. A configuration with a continuous parameter in its key is never drawn twice: every trial
  that draws one trains its own. So with ``n_t`` random trials in target ``t``'s study and ``p_ct`` the
  chance that one of them draws finite configuration ``c``, the expected number of trainings is
  ``seeded + sum_c [1 - prod_t (1 - p_ct) ** n_t] + sum_t n_t * P_t(continuous)``, and never more than
  ``min(trials with an intermediate phase, distinct configurations)``.
* ASHA: a trial continues past rung ``k`` with probability ``1 / reduction_factor ** (k + 1)`` and stops
  at ``max_t``; the target phase is charged the expected steps.
* The paper's grid (Phang et al. 2020) over the same intermediate tasks and targets: each intermediate
  task trained once at the space's seeded intermediate settings and reused by every target; each trained
  target fine-tuned once per intermediate task and once without, for its full length at the seeded
  target settings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from search.space import (
    INTERMEDIATE_TASK,
    NO_INTERMEDIATE,
    TARGET,
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    SchedulerSettings,
    SearchSpace,
    SpaceError,
)
from trainers.checkpoint_cache import intermediate_run, key_fields
from trainers.config import PhaseConfig, TargetConfig, TransferConfig, stable_hash
from trainers.memory import GIB, MemoryPlan, check_fits, encoder_shape, memory_plan
from trainers.tasks import TaskType, get_task

MAX_ENUMERATED = 256
"""An int parameter with more values than this is treated as continuous (one configuration per draw)."""


@dataclass(frozen=True)
class CostAssumptions:
    """The hardware and efficiency every GPU-hour figure rests on."""

    gpu: str = "NVIDIA A100 80GB"
    """The GPU the estimate is for."""
    peak_tflops: float = 312.0
    """Its dense bf16 peak, TFLOP/s (A100: 312)."""
    mfu: float = 0.30
    """Model FLOPs utilisation assumed for encoder fine-tuning at these batch sizes (not measured here)."""
    gpu_memory_gib: float = 80.0
    """Its memory, which the memory plan of every phase must fit."""

    def __post_init__(self) -> None:
        if self.peak_tflops <= 0 or not 0 < self.mfu <= 1:
            raise ValueError(f"peak_tflops must be > 0 and mfu in (0, 1], got {self.peak_tflops}, {self.mfu}")

    @property
    def flops_per_gpu_s(self) -> float:
        """Useful FLOPs one GPU does per second."""
        return self.peak_tflops * 1e12 * self.mfu


RULES: tuple[str, ...] = (
    "training FLOPs per token = forward x 3 for each trainable layer, x 1 for a frozen one (the bottom "
    "freeze_depth layers and the embeddings need no backward); forward per layer = 2 x (4 h^2 + 2 h ffn) "
    "+ 4 x seq x h; embeddings, heads, evaluation, start-up, data loading and checkpointing not counted",
    "every sequence padded to model.max_seq_length; a QA example is one window; a multiple-choice "
    "example is one sequence per choice",
    "steps = max_steps, else ceil(epochs x train examples / global batch) with train examples from the "
    "task registry (train_size, capped by data.max_train_examples)",
    "a random trial draws each active parameter uniformly (Optuna's random start-up distribution)",
    "an intermediate configuration (its checkpoint key) is trained once and reused by every later trial "
    "of any target; a continuous parameter in the key makes every draw a new configuration",
    "memory: 2 (bf16) or 4 (fp32) bytes per parameter, gradients the same per trainable parameter, "
    "AdamW 12 (bf16: fp32 master, two moments) or 8 bytes, split by ZeRO stage 1/2/3 over the workers, "
    "0 when offloaded; activations per trained layer as Korthikanti et al. 2022; DeepSpeed's buckets, "
    "the CUDA context and the heads not counted",
    "ASHA: past rung k a trial continues with probability 1/reduction_factor^(k+1), and stops at max_t",
    "the grid: each intermediate task trained once at the seeded intermediate settings and reused by all "
    "targets; each trained target fine-tuned once per intermediate task and once without, full length, "
    "at its seeded target settings",
)
"""The counting and FLOPs rules, printed with every estimate."""


# -- one phase --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseCost:
    """The compute of one training phase of one run."""

    steps: float
    """Optimizer steps."""
    sequences: float
    """Sequences processed (examples x sequences per example)."""
    flops: float
    """Training FLOPs."""
    gpu_hours: float
    """GPU-hours, summed over the phase's workers."""
    workers: int
    """GPUs (data-parallel workers) the phase runs on."""

    @property
    def wall_hours(self) -> float:
        """Hours on its workers."""
        return self.gpu_hours / self.workers

    def scaled(self, steps: float) -> PhaseCost:
        """The same phase cut to ``steps`` optimizer steps (early stopping)."""
        ratio = steps / self.steps if self.steps else 0.0
        return PhaseCost(
            steps, self.sequences * ratio, self.flops * ratio, self.gpu_hours * ratio, self.workers
        )


def train_examples(task: str, config: TransferConfig) -> int | None:
    """English training examples the phase on ``task`` reads (None: unknown, e.g. the miniature uncapped)."""
    spec = get_task(task)
    spec = get_task(spec.train_task) if spec.train_task else spec
    cap = config.data.max_train_examples
    if config.data.source == "miniature":
        return cap  # the miniature's own sizes are not the published ones
    if spec.train_size is None:
        return None
    return spec.train_size if cap is None else min(spec.train_size, cap)


def sequences_per_example(task: str) -> int:
    """Sequences the encoder runs per example: one per choice for multiple choice, else one."""
    spec = get_task(task)
    return spec.num_labels if spec.type is TaskType.MULTIPLE_CHOICE else 1


def phase_cost(
    config: TransferConfig, phase: PhaseConfig, tasks: list[str], assumptions: CostAssumptions
) -> PhaseCost | None:
    """The compute of ``phase`` (the intermediate or target section of ``config``) on ``tasks``.

    None when it cannot be estimated: an encoder the shape table does not know, or an epoch-based phase
    whose train-set size is unknown.
    """
    shape = encoder_shape(config.model.name_or_path)
    if shape is None:
        return None
    workers = config.scaling.num_workers
    global_batch = phase.batch_size * workers * config.deepspeed.gradient_accumulation_steps
    sizes = [train_examples(task, config) for task in tasks]
    known = [size for size in sizes if size is not None]
    if phase.max_steps is not None:
        steps = float(phase.max_steps)
    elif len(known) == len(sizes):
        steps = float(math.ceil(phase.epochs * sum(known) / global_batch))
    else:
        return None
    # A mixture samples tasks in proportion to their size (equal weights when sizes are unknown).
    proportional = len(known) == len(sizes) and sum(known) > 0
    weights = known if proportional else [1] * len(tasks)
    per_sequence = [w * sequences_per_example(t) for w, t in zip(weights, tasks, strict=True)]
    per_example = sum(per_sequence) / sum(weights)
    sequences = steps * global_batch * per_example
    seq_len = config.model.max_seq_length
    frozen = min(phase.freeze_depth, shape.layers)
    per_token = shape.layer_forward_flops(seq_len) * (shape.layers + 2 * (shape.layers - frozen))
    flops = sequences * seq_len * per_token
    return PhaseCost(steps, sequences, flops, flops / assumptions.flops_per_gpu_s / 3600.0, workers)


def asha_expected_steps(total: float, scheduler: SchedulerSettings) -> float:
    """Expected target steps of a trial whose full run is ``total`` steps, under ``scheduler``.

    ASHA's rungs are at ``grace_period * reduction_factor**k`` below ``max_t`` (as Ray's ASHA places
    them); only the best ``1/reduction_factor`` of the trials at a rung continue past it.
    """
    if scheduler.type != "asha" or scheduler.time_attr != "target_step":
        return total
    end = min(total, float(scheduler.max_t))
    expected, reached, previous = 0.0, 1.0, 0.0
    rung = float(scheduler.grace_period)
    while rung < scheduler.max_t and rung < end:
        expected += reached * (rung - previous)
        previous, reached = rung, reached / scheduler.reduction_factor
        rung *= scheduler.reduction_factor
    return expected + reached * (end - previous)


# -- drawing a trial -------------------------------------------------------------------------------


def _values(param: Param) -> list[tuple[Any, float]] | None:
    """(value, probability) of a uniform draw of ``param``; None for a continuum (or a very long grid)."""
    if isinstance(param, CategoricalParam):
        return [(choice, 1.0 / len(param.choices)) for choice in param.choices]
    if isinstance(param, IntParam) and (param.high - param.low) // param.step < MAX_ENUMERATED:
        values = list(range(param.low, param.high + 1, param.step))
        # Optuna draws a log int log-uniformly on [low - 0.5, high + 0.5] and rounds.
        weights = [math.log((v + 0.5) / (v - 0.5)) if param.log else 1.0 for v in values]
        return [(v, w / sum(weights)) for v, w in zip(values, weights, strict=True)]
    return None


def _representative(param: Param) -> Any:
    """One value standing for ``param`` where its value does not matter or is a continuum: its middle."""
    if isinstance(param, FloatParam):
        return math.sqrt(param.low * param.high) if param.log else (param.low + param.high) / 2
    if isinstance(param, IntParam):
        return param.low + (param.high - param.low) // param.step // 2 * param.step
    return param.choices[0]


@dataclass(frozen=True)
class Draw:
    """One outcome of a random trial's draw over the enumerated parameters."""

    params: dict[str, Any]
    """The flat point (as Tune hands it to a trial)."""
    probability: float
    """Its probability under uniform draws."""
    continuous: frozenset[str]
    """Enumerated parameters that were a continuum (represented by their middle)."""


def draws(space: SearchSpace, target: str, enumerate_param: Callable[[Param], bool]) -> list[Draw]:
    """Every outcome of a random trial of ``target``'s study over the parameters ``enumerate_param`` picks
    (and those their ``when`` refers to); the other parameters sit at a representative value."""
    chosen = {param.name for param in space.params if enumerate_param(param)}
    for param in reversed(space.params):  # conditions refer to earlier parameters only
        if param.name in chosen:
            chosen |= {c.key for c in param.when if c.key != TARGET}
    leaves: list[tuple[dict[str, Any], float, frozenset[str]]] = [({TARGET: target}, 1.0, frozenset())]
    for param in space.params:
        grown = []
        for assigned, probability, continuous in leaves:
            if not all(condition.holds(assigned) for condition in param.when):
                grown.append((assigned, probability, continuous))
                continue
            values = _values(param) if param.name in chosen else None
            if values is None:
                mark = continuous | {param.name} if param.name in chosen else continuous
                grown.append(({**assigned, param.name: _representative(param)}, probability, mark))
            else:
                grown += [({**assigned, param.name: v}, probability * p, continuous) for v, p in values]
        leaves = grown
    return [
        Draw({k: v for k, v in assigned.items() if k != TARGET}, probability, continuous)
        for assigned, probability, continuous in leaves
    ]


def checkpoint_key(config: TransferConfig) -> str:
    """The intermediate-checkpoint key of ``config``, computed without loading the trainer stack.

    ``key_fields`` versions a built-in encoder (and the miniature) by importing its module, which imports
    torch; that version is a function of the name alone, so the key is taken with a neutral name and
    source and the real ones are hashed beside it.
    """
    neutral = dataclasses.replace(
        intermediate_run(config),  # one run serves every length it publishes: it is what gets trained
        model=dataclasses.replace(config.model, name_or_path="<encoder>"),
        data=dataclasses.replace(config.data, source="hub"),
    )
    return stable_hash([key_fields(neutral), config.model.name_or_path, config.data.source])


# -- the estimate ----------------------------------------------------------------------------------


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
    """The studies' targets."""
    trials: dict[str, int]
    """Target -> trials (num_samples)."""
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
    device: str = "cuda"
    """Where the trials train (``cuda`` when ``scaling.use_gpu``)."""

    @property
    def gpu_hours(self) -> float | None:
        """This search's expected total."""
        return _sum(self.intermediate_gpu_hours, self.target_gpu_hours)

    @property
    def grid_gpu_hours(self) -> float | None:
        """The grid's total."""
        return _sum(self.grid_intermediate_gpu_hours, self.grid_target_gpu_hours)


def _sum(*parts: float | None) -> float | None:
    return None if any(part is None for part in parts) else sum(part for part in parts if part is not None)


def _target_cost(config: TransferConfig, assumptions: CostAssumptions) -> PhaseCost | None:
    if get_task(config.target.task).is_retrieval:
        return PhaseCost(0.0, 0.0, 0.0, 0.0, config.scaling.num_workers)
    return phase_cost(config, config.target, [config.target.task], assumptions)


def _intermediate_cost(config: TransferConfig, assumptions: CostAssumptions) -> PhaseCost | None:
    run = intermediate_run(config)  # the run that serves it: to the longest of its publish_steps
    assert run.intermediate is not None
    return phase_cost(run, run.intermediate, list(run.intermediate.tasks), assumptions)


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
        fixed.append({n: (_representative(by_name[n]) if v is _MISSING else v) for n, v in assigned.items()})
    return fixed


def _device(config: TransferConfig) -> Literal["cuda", "cpu"]:
    return "cuda" if config.scaling.use_gpu else "cpu"


def _keep_largest(
    memory: dict[str, tuple[MemoryPlan, str]], phase: str, config: TransferConfig, params: Mapping[str, Any]
) -> None:
    """Record ``config``'s plan for ``phase`` if it is the largest so far (``params``: its point)."""
    section = config.intermediate if phase == "intermediate" else config.target
    if section is None or (phase == "target" and get_task(config.target.task).is_retrieval):
        return
    tasks = (
        list(config.intermediate.tasks)
        if phase == "intermediate" and config.intermediate
        else [config.target.task]
    )
    plan = memory_plan(config, section, tasks, _device(config))
    if plan is not None and (phase not in memory or plan.total > memory[phase][0].total):
        # Name the trial by what sizes its memory: the phase's discrete settings, not learning rates.
        shown = {
            k: v
            for k, v in params.items()
            if (k.startswith(phase) and not isinstance(v, float)) or k == INTERMEDIATE_TASK == phase + "_task"
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
    continuous_keys = [name for name in key_params if _values(by_name[name]) is None]

    classes: dict[str, IntermediateClass] = {}
    seeded_keys: dict[str, PhaseCost | None] = {}
    trials: dict[str, int] = {}
    seeded: dict[str, int] = {}
    random_trials: dict[str, int] = {}
    seen: dict[frozenset[tuple[str, Any]], tuple[str, PhaseCost | None, str] | None] = {}
    memory: dict[str, tuple[MemoryPlan, str]] = {}
    with_intermediate = 0.0
    no_reuse_hours: float | None = 0.0
    target_hours: float | None = 0.0
    for target in targets:
        fixed = _fixed_points(space, target, key_names)
        trials[target] = space.tuner.num_samples
        seeded[target] = len(fixed)
        random_trials[target] = n = space.tuner.num_samples - len(fixed)
        for point in fixed:
            config = space.to_transfer_config(point, target)
            for phase in ("intermediate", "target"):
                _keep_largest(memory, phase, config, point)
            target_hours = _add_hours(target_hours, _target_cost(config, assumptions), space, 1.0)
            if config.intermediate is not None:
                with_intermediate += 1
                cost = _intermediate_cost(config, assumptions)
                seeded_keys[checkpoint_key(config)] = cost
                no_reuse_hours = _sum(no_reuse_hours, None if cost is None else cost.gpu_hours)
        for draw in draws(space, target, lambda p: not p.name.startswith("target.")):
            # The key and the intermediate phase do not depend on the target: each is worked out once.
            shared = frozenset((k, v) for k, v in draw.params.items() if not k.startswith("target."))
            if shared not in seen:
                config = build(draw.params, target)
                seen[shared] = None
                if config.intermediate is not None:
                    _keep_largest(memory, "intermediate", config, draw.params)
                    seen[shared] = (
                        checkpoint_key(config),
                        _intermediate_cost(config, assumptions),
                        _label(config, draw.params),
                    )
            found = seen[shared]
            if found is None:
                continue
            key, cost, label = found
            with_intermediate += n * draw.probability
            no_reuse_hours = _sum(
                no_reuse_hours, None if cost is None else n * draw.probability * cost.gpu_hours
            )
            continuous = bool(draw.continuous & key_names)
            entry = classes.setdefault(key, IntermediateClass(label, cost, continuous))
            entry.probability[target] = entry.probability.get(target, 0.0) + draw.probability
        target_draws = draws(space, target, lambda p: not p.name.startswith("intermediate"))
        for draw in target_draws:
            config = build(draw.params, target)
            _keep_largest(memory, "target", config, draw.params)
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
        inter_hours = _sum(inter_hours, None if entry.cost is None else expected * entry.cost.gpu_hours)
    unbounded = any(entry.continuous for entry in classes.values())
    distinct = None if unbounded else len(seeded_keys) + finite
    bound = with_intermediate if distinct is None else min(with_intermediate, float(distinct))

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
        device=_device(space.base_config(targets[0])),
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
        return _representative(param) if default is None else default

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
        target_hours = _sum(target_hours, None if cost is None else runs_per_target * cost.gpu_hours)
    inter_hours = _sum(*(None if c is None else c.gpu_hours for c in keys.values())) if keys else 0.0
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


# -- rendering -------------------------------------------------------------------------------------


def _hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def _describe(param: Param) -> str:
    if isinstance(param, CategoricalParam):
        return f"{param.name} ({len(param.choices)} choices)"
    if isinstance(param, IntParam):
        count = (param.high - param.low) // param.step + 1
        return f"{param.name} (int {param.low}..{param.high} step {param.step}: {count} values)"
    return f"{param.name} (float{' log' if param.log else ''} {param.low:g}..{param.high:g}: continuous)"


def _phase_row(phase: str, name: str, cost: PhaseCost | None) -> str:
    if cost is None:
        return f"| {phase} | {name} | n/a | n/a | n/a | n/a |"
    return (
        f"| {phase} | {name} | {cost.steps:,.0f} | {cost.sequences:,.0f} | {_hours(cost.gpu_hours)} "
        f"| {_hours(cost.wall_hours)} |"
    )


def format_plan(space: SearchSpace, est: Estimate, concurrent: int | None) -> str:
    """The dry run's report: the plan, the intermediate-training counts and the compute, with assumptions.

    ``concurrent``: trials at once if known before the cluster is (an override or the space's cap).
    """
    from search.resources import trial_resources

    need = trial_resources(space)
    workers = space.base_config(est.targets[0]).scaling.num_workers
    gpus_per_trial = need["GPU"]
    a = est.assumptions
    total_trials = sum(est.trials.values())
    trained = [t for t in est.targets if not get_task(t).is_retrieval]
    lines = [
        f"xstilts search --dry-run {space.source}: nothing started (no Ray, no MLflow, nothing written)",
        f"space {space.name}: {space.description}",
        f"studies: {len(est.targets)} ({', '.join(space.study_name(t) for t in est.targets)})",
        f"trials: {total_trials} ({space.tuner.num_samples} per study, of which seeded points: "
        + ", ".join(f"{t} {n}" for t, n in est.seeded.items())
        + ")",
        "searched: " + "; ".join(_describe(p) for p in space.params),
    ]
    s = space.tuner.scheduler
    if s.type == "asha":
        lines.append(
            f"scheduler: ASHA on {s.time_attr}, grace {s.grace_period}, reduction {s.reduction_factor:g}, "
            f"max_t {s.max_t}"
        )
    else:
        lines.append("scheduler: FIFO (every trial runs to its end)")
    lines.append(
        f"a trial needs: {need['GPU']:g} GPUs and {need['CPU']:g} CPUs ({workers} Train workers), "
        "plus its driver's sliver of a CPU"
    )
    if concurrent is None:
        lines.append("concurrency: as many trials as the cluster's GPUs (or CPUs) hold, decided at start")
    else:
        busy = f"{concurrent * need['GPU']:g} GPUs" if need["GPU"] else f"{concurrent * need['CPU']:g} CPUs"
        lines.append(f"concurrency: {concurrent} trials at once ({busy} busy)")
    where = f"the {a.gpu}'s {a.gpu_memory_gib:g} GiB" if est.device == "cuda" else "each worker's CPU memory"
    lines.append(f"memory per worker at the peak of a step, largest trial of each phase (against {where}):")
    for phase, (plan, label) in sorted(est.memory.items()):
        lines.append(
            f"  {phase}: {plan.describe()} ({plan.precision}, ZeRO {plan.zero_stage}, "
            f"{plan.workers} workers; {label})"
        )
    lines.append("intermediate checkpoints (the key of trainers/checkpoint_cache.py key_fields):")
    keyed = [f"{n} (continuous)" if n in est.continuous_key_params else n for n in est.key_params]
    lines.append(f"  searched parameters in the key: {', '.join(keyed) or 'none'}")
    if est.distinct_configs is None:
        lines.append(
            f"  distinct intermediate configurations the space allows: unbounded "
            f"({', '.join(est.continuous_key_params)} continuous: every trial that draws one trains its own)"
        )
    else:
        lines.append(f"  distinct intermediate configurations the space allows: {est.distinct_configs}")
    lines.append(
        f"  trials with an intermediate phase: {est.trials_with_intermediate:.1f} of {total_trials} (expected)"
    )
    lines.append(
        f"  intermediate trainings: {est.trainings:.1f} expected with the cache's reuse "
        f"(at most {est.trainings_bound:.1f}), {est.trials_with_intermediate:.1f} without reuse; "
        f"the grid: {est.grid_trainings}"
    )
    lines += [
        f"per-phase compute, one run each (GPU-h summed over its {workers} workers; hours: wall-clock on them):",
        "| phase | task | steps | sequences | GPU-h | hours |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for task, cost in est.grid_intermediate_costs.items():
        lines.append(_phase_row("intermediate", task, cost))
    for target, cost in est.grid_target_costs.items():
        lines.append(_phase_row("target (full)", target, cost))
        if cost is not None and target in est.asha_steps and est.asha_steps[target] < cost.steps:
            lines.append(_phase_row("target (ASHA, expected)", target, cost.scaled(est.asha_steps[target])))
    search_runs = sum(est.trials[t] for t in trained)
    lines += [
        f"estimated compute ({a.gpu}, {a.peak_tflops:g} TFLOP/s bf16 peak, MFU {a.mfu:g}):",
        "| | intermediate trainings | intermediate GPU-h | target runs | target GPU-h | total GPU-h |",
        "|---|---:|---:|---:|---:|---:|",
        f"| this search (cache reuse) | {est.trainings:.1f} | {_hours(est.intermediate_gpu_hours)} | "
        f"{search_runs} | {_hours(est.target_gpu_hours)} | {_hours(est.gpu_hours)} |",
        f"| this search, no reuse | {est.trials_with_intermediate:.1f} | "
        f"{_hours(est.intermediate_gpu_hours_no_reuse)} | {search_runs} | {_hours(est.target_gpu_hours)} | "
        f"{_hours(_sum(est.intermediate_gpu_hours_no_reuse, est.target_gpu_hours))} |",
        f"| the paper's grid | {est.grid_trainings} | {_hours(est.grid_intermediate_gpu_hours)} | "
        f"{est.grid_target_runs} | {_hours(est.grid_target_gpu_hours)} | {_hours(est.grid_gpu_hours)} |",
    ]
    if est.gpu_hours is not None and est.grid_gpu_hours:
        lines.append(f"this search / the grid: {est.gpu_hours / est.grid_gpu_hours:.2f} x the GPU-hours")
        if concurrent is not None and gpus_per_trial:
            wall = est.gpu_hours / (concurrent * gpus_per_trial)
            lines.append(
                f"wall-clock at {concurrent} trials at once: about {_hours(wall)} hours (GPUs kept busy)"
            )
    shown = [f"{task} {'?' if n is None else f'{n:,}'}" for task, n in sorted(est.train_examples.items())]
    lines.append("assumptions:")
    lines.append(f"  - train examples per task (task registry, data caps applied): {', '.join(shown)}")
    lines += [f"  - {rule}" for rule in RULES]
    return "\n".join(lines)


def dry_run(space: SearchSpace, targets: list[str], max_concurrent_trials: int | None) -> str:
    """``xstilts search --dry-run``: the plan and estimate of ``space`` (only ``targets`` if given)."""
    if max_concurrent_trials is not None and max_concurrent_trials < 1:
        raise SpaceError(f"--max-concurrent-trials must be >= 1, got {max_concurrent_trials}")
    for target in targets:
        if target not in space.targets:
            raise SpaceError(
                f"--target {target} is not a target of {space.source} ({', '.join(space.targets)})"
            )
    concurrent = max_concurrent_trials or space.tuner.max_concurrent_trials
    est = estimate(space, targets or None)
    _check_memory(est)
    return format_plan(space, est, concurrent)


def check_memory(space: SearchSpace, targets: list[str]) -> None:
    """Before a real search: a trial whose phase cannot fit the GPUs is one ``MemoryPlanError`` line."""
    _check_memory(estimate(space, targets or None))


def _check_memory(est: Estimate) -> None:
    if est.device == "cuda":
        for phase, (plan, label) in est.memory.items():
            check_fits(plan, phase, est.assumptions.gpu_memory_gib * GIB, est.assumptions.gpu, where=label)
