"""One run's compute (a phase's steps and FLOPs, ASHA's expected steps) and a random trial's draws."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search.space import (
    TARGET,
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    SchedulerSettings,
    SearchSpace,
)
from trainers import keys
from trainers.checkpoint_cache import intermediate_run, key_fields
from trainers.config import PhaseConfig, TransferConfig, stable_hash
from trainers.memory import encoder_shape
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
    "training FLOPs per token = forward x 3 for each trainable layer (x 4 with model.gradient_checkpointing: "
    "its forward runs again in the backward), x 1 for a frozen one (the bottom "
    "freeze_depth layers and the embeddings need no backward); forward per layer = 2 x (4 h^2 + 2 h ffn) "
    "+ 4 x seq x h (T5 family: 2 x (4 h a + 3 h ffn) + 4 x seq x a, a the attention width, the FFN gated); "
    "embeddings, heads, evaluation, start-up, data loading and checkpointing not counted",
    "every sequence padded to model.max_seq_length; a QA example is one window; a multiple-choice "
    "example is one sequence per choice",
    "steps = max_steps, else ceil(epochs x train examples / global batch) with train examples from the "
    "task registry (train_size, capped by data.max_train_examples)",
    "a random trial draws each active parameter uniformly (Optuna's random start-up distribution)",
    "an intermediate configuration (its checkpoint key) is trained once and reused by every later trial "
    "of any target; a continuous parameter in the key makes every draw a new configuration",
    "memory: 2 (bf16) or 4 (fp32) bytes per parameter, gradients the same per trainable parameter, "
    "AdamW 12 (bf16: fp32 master, two moments) or 8 bytes, split by ZeRO stage 1/2/3 over the workers, "
    "0 when offloaded; activations per trained layer as Korthikanti et al. 2022 (with "
    "model.gradient_checkpointing: each trained layer's input plus one layer recomputed); DeepSpeed's buckets, "
    "the CUDA context and the heads not counted",
    "ASHA: past rung k a trial continues with probability 1/reduction_factor^(k+1), and stops at max_t",
    "a retrieval target (BUCC, Tatoeba) has no study and no trials: it is evaluated once on the base encoder "
    "and once on each distinct intermediate checkpoint the trials use (each length a run publishes is one); "
    "an evaluation trains nothing, and like every evaluation it is not priced",
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
    # Backward is twice the forward; gradient checkpointing runs each trained layer's forward once more.
    backward = 3 if config.model.gradient_checkpointing else 2
    per_token = shape.layer_forward_flops(seq_len) * (shape.layers + backward * (shape.layers - frozen))
    flops = sequences * seq_len * per_token
    return PhaseCost(steps, sequences, flops, flops / assumptions.flops_per_gpu_s / 3600.0, workers)


def asha_expected_steps(total: float, scheduler: SchedulerSettings) -> float:
    """Expected target steps of a trial whose full run is ``total`` steps, under ``scheduler``.

    ASHA's rungs are at ``grace_period * reduction_factor**k`` below ``max_t`` (as Ray's ASHA places
    them); only the best ``1/reduction_factor`` of the trials at a rung continue past it.
    """
    if scheduler.type != "asha" or scheduler.time_attr != keys.TARGET_STEP:
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


def uniform_values(param: Param) -> list[tuple[Any, float]] | None:
    """(value, probability) of a uniform draw of ``param``; None for a continuum (or a very long grid)."""
    if isinstance(param, CategoricalParam):
        return [(choice, 1.0 / len(param.choices)) for choice in param.choices]
    if isinstance(param, IntParam) and (param.high - param.low) // param.step < MAX_ENUMERATED:
        values = list(range(param.low, param.high + 1, param.step))
        # Optuna draws a log int log-uniformly on [low - 0.5, high + 0.5] and rounds.
        weights = [math.log((v + 0.5) / (v - 0.5)) if param.log else 1.0 for v in values]
        return [(v, w / sum(weights)) for v, w in zip(values, weights, strict=True)]
    return None


def representative(param: Param) -> Any:
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
            values = uniform_values(param) if param.name in chosen else None
            if values is None:
                mark = continuous | {param.name} if param.name in chosen else continuous
                grown.append(({**assigned, param.name: representative(param)}, probability, mark))
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
    source and the real ones are hashed beside it. The features versions of the tasks' types (the task
    type modules import torch) are a function of the task names the key holds: left out.
    """
    neutral = dataclasses.replace(
        intermediate_run(config),  # one run serves every length it publishes: it is what gets trained
        model=dataclasses.replace(config.model, name_or_path="<encoder>"),
        data=dataclasses.replace(config.data, source="hub"),
    )
    return stable_hash(
        [key_fields(neutral, type_versions=False), config.model.name_or_path, config.data.source]
    )
