"""The compute views of ``xstilts report``: (e) each target's incumbent against the compute spent, and
(f) each completed trial's gain over the no-intermediate baseline against its cost, with the Pareto front."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from search.results import TEST_METRIC, Trial
from search.space import NO_INTERMEDIATE as BASELINE
from trainers.keys import COMPLETED, COST_GPU_S, EARLY_STOPPED


@dataclass(frozen=True)
class ComputePoint:
    """Where a target's search stood once a trial ended."""

    gpu_s: float
    """Device-seconds its trials had spent by then (``cost/gpu_s``, in start order)."""
    objective: float | None
    """The incumbent's objective (None before any trial completed)."""
    zero_shot: float | None
    """The incumbent's zero_shot_avg."""


def compute_curve(trials: Sequence[Trial], target: str, metric: str, mode: str = "max") -> list[ComputePoint]:
    """(e) The incumbent after each of ``target``'s trials, against the compute spent; [] when unpriced."""
    mine = sorted((t for t in trials if t.target == target), key=lambda t: (t.start_time, t.trial_id))
    if not mine or any(t.metric(COST_GPU_S) is None for t in mine if t.status in (COMPLETED, EARLY_STOPPED)):
        return []  # a search from before trials were priced
    sign = 1 if mode == "max" else -1
    spent = 0.0
    incumbent: Trial | None = None
    curve = []
    for trial in mine:
        spent += trial.metric(COST_GPU_S) or 0.0
        value = trial.metric(metric)
        better = incumbent is None or (
            value is not None and sign * value > sign * (incumbent.metric(metric) or 0.0)
        )
        if trial.status == COMPLETED and value is not None and better:
            incumbent = trial
        curve.append(
            ComputePoint(
                spent,
                incumbent.metric(metric) if incumbent else None,
                incumbent.metric(TEST_METRIC) if incumbent else None,
            )
        )
    return curve


@dataclass(frozen=True)
class CostPoint:
    """One completed trial of a target: its gain over the no-intermediate baseline against its cost."""

    trial_id: str
    intermediate: str
    """Its intermediate task (``none``, a task, a mixture ``a+b``)."""
    gpu_s: float
    """Device-seconds it held (``cost/gpu_s``)."""
    gain: float
    """Its zero_shot_avg minus the mean zero_shot_avg of the target's completed baseline trials."""
    on_front: bool
    """No other trial of the target gains as much or more for as little or less (one of them strictly)."""


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which (cost, gain) points no other point dominates: costs no more and gains no less, one strictly."""
    return [
        not any(
            other_cost <= cost and other_gain >= gain and (other_cost, other_gain) != (cost, gain)
            for other_cost, other_gain in points
        )
        for cost, gain in points
    ]


def gain_cost_points(trials: Sequence[Trial], target: str) -> list[CostPoint]:
    """(f) ``target``'s completed, priced trials as (cost, gain) points, in cost order; [] without a baseline."""
    done = [
        t
        for t in trials
        if t.target == target and t.status == COMPLETED and t.metric(TEST_METRIC) is not None
    ]
    base = [t.metric(TEST_METRIC) or 0.0 for t in done if t.intermediate_task == BASELINE]
    priced = sorted(
        (t for t in done if t.metric(COST_GPU_S) is not None),
        key=lambda t: (t.metric(COST_GPU_S) or 0.0, t.start_time, t.trial_id),
    )
    if not base or not priced:
        return []
    baseline = sum(base) / len(base)
    raw = [(t.metric(COST_GPU_S) or 0.0, (t.metric(TEST_METRIC) or 0.0) - baseline) for t in priced]
    front = pareto_front(raw)
    return [
        CostPoint(t.trial_id, t.intermediate_task, cost, gain, on)
        for t, (cost, gain), on in zip(priced, raw, front, strict=True)
    ]


def cost_markdown(costs: dict[str, list[CostPoint]]) -> list[str]:
    """Per target, the Pareto front of gain against cost, cheapest first."""
    lines = [
        "",
        "## Gain against cost (Pareto front)",
        "",
        "Per target, the completed trials no other beats on both: gain over the mean of the baseline trials "
        "(zero_shot_avg) against device-hours (`cost/gpu_s` as logged; a trial that reused a cached "
        "intermediate encoder did not pay for it).",
        "",
    ]
    for target, points in costs.items():
        front = [p for p in points if p.on_front]
        if not front:
            lines.append(f"- **{target}**: no completed, priced trial beside a completed baseline")
            continue
        cells = ", ".join(
            f"{p.intermediate} ({p.trial_id}) {p.gain:+.2f} at {p.gpu_s / 3600:.3g} GPU-h" for p in front
        )
        lines.append(f"- **{target}**: {cells}")
    return lines
