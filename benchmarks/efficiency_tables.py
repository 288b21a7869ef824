"""The search benchmark's data and what it prints: trials as each method ran them, the recorded grid as the
benchmark reads it, and the tables, regret curve and RESULT line of ``benchmarks/search_efficiency.py``."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from trainers import keys

WITHIN = 1.0  # points of the selection metric from the grid's best


@dataclass
class Trial:
    """One trial as a method ran it, in order."""

    target: str
    cost_s: float
    steps: float
    trained_intermediate: bool
    finished: bool
    score: float
    zero_shot: float


@dataclass
class Outcome:
    """One method on one replay seed."""

    method: str
    seed: int
    trials: list[Trial] = field(default_factory=list)


@dataclass(frozen=True)
class Grid:
    """The recorded grid of one grid seed, as the benchmark reads it."""

    rows: list[dict[str, Any]]

    def of(self, target: str) -> list[dict[str, Any]]:
        """The target's cells in the grid's natural order."""
        return [r for r in self.rows if r["target"] == target]

    def best(self, target: str, metric: str) -> float:
        """The grid's best value of the selection metric for ``target``."""
        return max(r[metric] for r in self.of(target))

    def best_zero_shot(self, target: str) -> float:
        """The oracle: the best zero-shot average any cell reached."""
        return max(r[keys.ZERO_SHOT_AVG] for r in self.of(target))

    def total_cost(self, targets: tuple[str, ...]) -> tuple[float, float]:
        """Device-seconds and optimizer steps of the whole grid: each intermediate once, every cell."""
        rows = [r for r in self.rows if r["target"] in targets]
        intermediates = {r["intermediate_key"]: r for r in rows if r["intermediate_key"]}
        seconds = sum(r["intermediate_s"] for r in intermediates.values())
        steps = sum(r["intermediate_steps"] for r in intermediates.values())
        seconds += sum(r["target_s"] + r["eval_s"] for r in rows)
        steps += sum(r["target_steps"] for r in rows)
        return seconds, steps


@dataclass
class Summary:
    """What one outcome shows, per target and overall."""

    to_within_s: dict[str, float]
    to_within_steps: dict[str, float]
    regret: dict[str, float]
    intermediate_trainings: int
    total_s: float


def summarize(outcome: Outcome, grid: Grid, targets: tuple[str, ...], metric: str) -> Summary:
    """Compute until within 1 point, final zero-shot regret, intermediate trainings."""
    to_s: dict[str, float] = {}
    to_steps: dict[str, float] = {}
    regret: dict[str, float] = {}
    for target in targets:
        trials = [t for t in outcome.trials if t.target == target]
        best = grid.best(target, metric)
        spent = steps = 0.0
        incumbent: Trial | None = None
        to_s[target] = to_steps[target] = math.inf
        for trial in trials:
            spent += trial.cost_s
            steps += trial.steps
            if trial.finished and (incumbent is None or trial.score > incumbent.score):
                incumbent = trial
            if incumbent is not None and incumbent.score >= best - WITHIN and math.isinf(to_s[target]):
                to_s[target], to_steps[target] = spent, steps
        regret[target] = grid.best_zero_shot(target) - incumbent.zero_shot if incumbent else math.inf
    trainings = sum(1 for t in outcome.trials if t.trained_intermediate)
    return Summary(to_s, to_steps, regret, trainings, sum(t.cost_s for t in outcome.trials))


def regret_curve(outcome: Outcome, grid: Grid, xs: list[float], targets: tuple[str, ...]) -> list[float]:
    """Mean over targets of the incumbent's zero-shot regret after each amount of compute."""
    points: list[tuple[float, float]] = []  # (cumulative compute, mean regret)
    spent = 0.0
    incumbents: dict[str, Trial] = {}
    for trial in outcome.trials:
        spent += trial.cost_s
        if trial.finished and (
            trial.target not in incumbents or trial.score > incumbents[trial.target].score
        ):
            incumbents[trial.target] = trial
        if len(incumbents) == len(targets):
            points.append(
                (spent, statistics.mean(grid.best_zero_shot(t) - incumbents[t].zero_shot for t in targets))
            )
    curve = []
    for x in xs:
        reached = [r for c, r in points if c <= x]
        curve.append(reached[-1] if reached else math.nan)
    return curve


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _spread(values: list[float]) -> str:
    """Median [quartiles] of values where inf means never reached."""

    def show(value: float) -> str:
        return "never" if math.isinf(value) else f"{value:.0f}"

    ordered = sorted(values)
    if len(ordered) == 1:
        return show(ordered[0])
    low, mid, high = (ordered[int(q * (len(ordered) - 1) + 0.5)] for q in (0.25, 0.5, 0.75))
    return f"{show(mid)} [{show(low)}-{show(high)}]"


def report(
    outcomes: dict[str, list[tuple[Outcome, Grid]]],
    grids: dict[int, Grid],
    targets: tuple[str, ...],
    metric: str,
    plot: str,
) -> None:
    """Print the tables, write the plot, end with the RESULT line."""
    grid_total_s = statistics.mean(g.total_cost(targets)[0] for g in grids.values())
    grid_total_steps = statistics.mean(g.total_cost(targets)[1] for g in grids.values())
    seeds = len(next(iter(outcomes.values())))
    print(
        f"\nwhole grid for {', '.join(targets)} (mean over its {len(grids)} seeds): {grid_total_s:.0f} s, "
        f"{grid_total_steps:.0f} optimizer steps; {seeds} replay seeds per method"
    )
    print(
        f"| method | target | compute to within 1 pt of the grid's best {metric}, s: median [IQR] | "
        "optimizer steps (median) | / whole grid | zero-shot regret of the selection (median) | reached |"
    )
    print("|" + "---|" * 7)
    ratios: dict[str, float] = {}
    for method, runs in outcomes.items():
        summaries = [summarize(o, g, targets, metric) for o, g in runs]
        for target in (*targets, "all"):
            if target == "all":
                s_values = [sum(s.to_within_s.values()) for s in summaries]
                step_values = [sum(s.to_within_steps.values()) for s in summaries]
                regrets = [statistics.mean(s.regret.values()) for s in summaries]
            else:
                s_values = [s.to_within_s[target] for s in summaries]
                step_values = [s.to_within_steps[target] for s in summaries]
                regrets = [s.regret[target] for s in summaries]
            reached = sum(1 for v in s_values if not math.isinf(v))
            ratio = _median(s_values) / grid_total_s
            if target == "all":
                ratios[method] = ratio
            print(
                f"| {method} | {target} | {_spread(s_values)} | {_median(step_values):.0f} | {ratio:.2f} | "
                f"{_median(regrets):.2f} | {reached}/{len(summaries)} |"
            )
    print("\n| method | intermediate trainings (median) | whole run, s (median) | whole run / whole grid |")
    print("|---|---|---|---|")
    for method, runs in outcomes.items():
        summaries = [summarize(o, g, targets, metric) for o, g in runs]
        total = _median([s.total_s for s in summaries])
        trainings = _median([float(s.intermediate_trainings) for s in summaries])
        print(f"| {method} | {trainings:.0f} | {total:.0f} | {total / grid_total_s:.2f} |")
    _plot(outcomes, grid_total_s, plot, targets)
    print(f"plot: {plot}")
    names = ("xstilts", "xstilts_before_issue_11", "random", "tune_no_reuse")
    print("RESULT " + " ".join(f"{name}_vs_grid={ratios[name]:.3f}" for name in names if name in ratios))


def _plot(
    outcomes: dict[str, list[tuple[Outcome, Grid]]], grid_total_s: float, path: str, targets: tuple[str, ...]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [grid_total_s * f for f in [i / 200 for i in range(1, 201)]]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for method, runs in outcomes.items():
        curves = [regret_curve(o, g, xs, targets) for o, g in runs]
        median = [
            statistics.median([c[i] for c in curves])
            if all(not math.isnan(c[i]) for c in curves)
            else math.nan
            for i in range(len(xs))
        ]
        axis.plot([x / grid_total_s for x in xs], median, label=method)
    axis.set_xlabel("compute / whole grid's compute")
    axis.set_ylabel("zero-shot regret of the incumbent (points, median over seeds)")
    axis.set_title("Search efficiency on the recorded grid (mean over targets)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
