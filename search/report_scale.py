"""The numbers of ``xstilts report``'s encoder and freeze-depth views (spaces/encoders.yaml, scale.yaml,
freeze.yaml): gain over the same encoder's no-intermediate trials, and per freeze depth, score, step time
and peak memory.

Read from the trials ``search/results.py`` returns; ``search/report_plots.py`` renders them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from search.results import TEST_METRIC, Trial
from search.space import NO_INTERMEDIATE as BASELINE
from trainers import keys
from trainers.keys import COMPLETED
from trainers.memory import encoder_shape

ENCODER_PARAM = "model.name_or_path"
"""The logged config key that names a trial's encoder."""


@dataclass(frozen=True)
class EncoderGain:
    """One (target, encoder, intermediate task) cell: its mean zero_shot_avg over the encoder's baseline's."""

    target: str
    encoder: str
    intermediate: str
    gain: float
    """Mean zero_shot_avg of the cell's completed trials minus that of the encoder's completed ``none`` trials."""
    trials: int
    """Completed trials in the cell."""
    baseline_trials: int
    """Completed ``none`` trials of the encoder on the target."""
    parameters: int | None
    """The encoder's parameter count (``trainers/memory.py``'s shape table), None if unknown."""


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def encoder_of(trial: Trial) -> str | None:
    """The trial's encoder, as its logged config names it."""
    value = trial.params.get(ENCODER_PARAM)
    return value if value not in (None, "None") else None


def encoder_gains(trials: Sequence[Trial], targets: Sequence[str]) -> list[EncoderGain]:
    """Per target and encoder, each intermediate task's gain over the encoder's own baseline (means over the
    completed trials, so seeds average out); cells without a baseline of their encoder are left out."""
    done = [
        t for t in trials if t.status == COMPLETED and t.metric(TEST_METRIC) is not None and encoder_of(t)
    ]
    gains: list[EncoderGain] = []
    for target in targets:
        mine = [t for t in done if t.target == target]
        for encoder in sorted({encoder_of(t) or "" for t in mine}):
            of_encoder = [t for t in mine if encoder_of(t) == encoder]
            base = [t.metric(TEST_METRIC) or 0.0 for t in of_encoder if t.intermediate_task == BASELINE]
            if not base:
                continue
            shape = encoder_shape(encoder)
            for task in sorted({t.intermediate_task for t in of_encoder} - {BASELINE}):
                scores = [t.metric(TEST_METRIC) or 0.0 for t in of_encoder if t.intermediate_task == task]
                gains.append(
                    EncoderGain(
                        target,
                        encoder,
                        task,
                        _mean(scores) - _mean(base),
                        len(scores),
                        len(base),
                        shape.parameters if shape else None,
                    )
                )
    return gains


def varies_encoder(trials: Sequence[Trial]) -> bool:
    """Whether the completed trials used more than one encoder (the encoder views are drawn only then)."""
    return len({encoder_of(t) for t in trials if t.status == COMPLETED} - {None}) > 1


@dataclass(frozen=True)
class DepthPoint:
    """One completed trial at its freeze depths: its score and its phases' mean step times and peak memory."""

    target: str
    intermediate: str
    intermediate_depth: int | None
    """``intermediate.freeze_depth`` (None without an intermediate phase)."""
    target_depth: int | None
    """``target.freeze_depth``."""
    score: float
    """zero_shot_avg."""
    intermediate_step_s: float | None
    """Mean seconds per intermediate step (``time/intermediate_step_s``; None when reused from the cache)."""
    target_step_s: float | None
    """Mean seconds per target step (``time/target_step_s``)."""
    intermediate_peak_mib: float | None = None
    """The intermediate phase's peak memory (``memory_measure`` says which; None when not logged or reused)."""
    target_peak_mib: float | None = None
    """The target phase's peak memory."""
    memory_measure: str | None = None
    """``cuda`` (``torch.cuda.max_memory_allocated``) or ``rss`` (the CPU process's peak resident set)."""


MEMORY_MEASURES = {
    "cuda": (keys.MEMORY_CUDA_PEAK_MIB, "GPU peak MiB (max_memory_allocated)"),
    "rss": (keys.MEMORY_RSS_PEAK_MIB, "process peak RSS MiB (CPU)"),
}
"""Each peak-memory measure a phase may log: its metric and the axis label that names it."""


def _peaks(trial: Trial) -> tuple[float | None, float | None, str | None]:
    """(intermediate, target) peak MiB of ``trial`` and their measure: CUDA's where logged, else the CPU one."""
    for measure, (key, _label) in MEMORY_MEASURES.items():
        found = [trial.metric(key.format(phase=phase)) for phase in ("intermediate", "target")]
        if any(value is not None for value in found):
            return found[0], found[1], measure
    return None, None, None


def _depth(trial: Trial, key: str) -> int | None:
    value = trial.params.get(key)
    return int(value) if value not in (None, "None", "") else None


def depth_points(trials: Sequence[Trial]) -> list[DepthPoint]:
    """Every completed trial as a point of the freeze-depth view."""
    points = []
    for t in trials:
        score = t.metric(TEST_METRIC)
        if t.status != COMPLETED or score is None:
            continue
        has_intermediate = t.intermediate_task != BASELINE
        points.append(
            DepthPoint(
                t.target,
                t.intermediate_task,
                _depth(t, "intermediate.freeze_depth") if has_intermediate else None,
                _depth(t, "target.freeze_depth"),
                score,
                t.metric(keys.TIME_STEP_S.format(phase="intermediate")),
                t.metric(keys.TIME_STEP_S.format(phase="target")),
                *_peaks(t),
            )
        )
    return points


def memory_measure(points: Sequence[DepthPoint]) -> str | None:
    """The peak-memory measure the freeze-depth view draws: ``cuda`` where any trial logged it (trials on CPU
    measured something else, not drawn on the same axis), else ``rss``, else None (no memory row)."""
    logged = {p.memory_measure for p in points} - {None}
    return next((measure for measure in MEMORY_MEASURES if measure in logged), None)


def varies_intermediate_depth(points: Sequence[DepthPoint]) -> bool:
    """Whether the trials froze the intermediate phase at more than one depth."""
    return len({p.intermediate_depth for p in points} - {None}) > 1


__all__ = [
    "MEMORY_MEASURES",
    "DepthPoint",
    "EncoderGain",
    "depth_points",
    "encoder_gains",
    "encoder_of",
    "memory_measure",
    "varies_encoder",
    "varies_intermediate_depth",
]
