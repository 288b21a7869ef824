"""The plots of ``xstilts report`` (matplotlib, Agg backend): they render what ``search/report.py`` computed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.report_scale import MEMORY_MEASURES, memory_measure
from search.results import TEST_METRIC, Trial, languages_of
from search.space import NO_INTERMEDIATE as BASELINE
from trainers import keys
from trainers.keys import COMPLETED, EARLY_STOPPED

if TYPE_CHECKING:  # report imports this module: the types only, never at run time
    from search.report import Heatmap
    from search.report_costs import ComputePoint, CostPoint
    from search.report_scale import DepthPoint, EncoderGain


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window (also on headless nodes)
    import matplotlib.pyplot as plt

    return plt


def plot_heatmap(heatmap: Heatmap, pick: str, path: Path) -> None:
    """(a) Gain over the baseline per (intermediate task, target)."""
    import numpy as np

    plt = _pyplot()
    if not heatmap.rows:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no completed trial with an intermediate task", ha="center", va="center")
        _save(fig, path)
        return
    data = np.array(heatmap.values, dtype=float).reshape(len(heatmap.rows), len(heatmap.cols))
    finite = data[np.isfinite(data)]
    limit = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    fig, ax = plt.subplots(figsize=(2.4 + 1.6 * len(heatmap.cols), 1.8 + 0.55 * max(1, len(heatmap.rows))))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#dddddd")  # grey: no completed trial in the cell
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    for (row, col), value in np.ndenumerate(data):
        text = f"{value:+.2f}" if math.isfinite(value) else "n/a"
        text += f"\n(n={heatmap.counts[row][col]})"
        dark = math.isfinite(value) and abs(value) > 0.6 * limit
        ax.text(col, row, text, ha="center", va="center", fontsize=10, color="white" if dark else "black")
    ax.set_xticks(
        range(len(heatmap.cols)),
        [f"{c}\nbaseline {_fmt(heatmap.baseline[c])} (n={heatmap.baseline_counts[c]})" for c in heatmap.cols],
        fontsize=9,
    )
    ax.set_yticks(range(len(heatmap.rows)), heatmap.rows)
    ax.set_xlabel("target task")
    ax.set_ylabel("intermediate task")
    how = "best trial by zero_shot_avg" if pick == TEST_METRIC else f"best trial chosen by {pick}"
    ax.set_title(
        f"Gain in zero_shot_avg over no intermediate task\n({how} minus best baseline; completed trials)",
        fontsize=11,
    )
    fig.colorbar(image, ax=ax, label=f"{TEST_METRIC} gain (points)")
    _save(fig, path)


def plot_freeze_depth(trials: Sequence[Trial], targets: Sequence[str], path: Path) -> None:
    """(b) Scores against target.freeze_depth, per target (columns); colour = intermediate task.

    Top row: zero_shot_avg of the completed trials. Bottom row: the last reported en_dev of every
    trial that ended, hollow for those ASHA stopped early, which shows the depths that never finished.
    """
    plt = _pyplot()
    ended = [t for t in trials if t.status in (COMPLETED, EARLY_STOPPED) and t.freeze_depth is not None]
    # The baseline first, in grey, so the intermediate tasks stand out against it.
    tasks = sorted({t.intermediate_task for t in ended}, key=lambda x: (x != BASELINE, x))
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # 7 is tab10's grey
    colours = {task: palette[i % len(palette)] for i, task in enumerate(t for t in tasks if t != BASELINE)}
    colours[BASELINE] = "#7f7f7f"
    fig, axes = plt.subplots(2, len(targets), figsize=(4.2 * len(targets), 6.4), squeeze=False, sharex="col")
    for col, target in enumerate(targets):
        mine = [t for t in ended if t.target == target]
        depths = sorted({t.freeze_depth for t in mine if t.freeze_depth is not None})
        rows = (
            (axes[0][col], [t for t in mine if t.status == COMPLETED], TEST_METRIC),
            (axes[1][col], mine, keys.EN_DEV),
        )
        for ax, shown, metric in rows:
            points = [t for t in shown if t.metric(metric) is not None]
            for trial in points:
                hollow = trial.status != COMPLETED
                ax.scatter(
                    [trial.freeze_depth],
                    [trial.metric(metric)],
                    s=46,
                    facecolors="none" if hollow else colours[trial.intermediate_task],
                    edgecolors=colours[trial.intermediate_task] if hollow else "black",
                    linewidths=1.4 if hollow else 0.5,
                )
            done = sorted(
                {t.freeze_depth for t in points if t.status == COMPLETED and t.freeze_depth is not None}
            )
            if done:
                best = [
                    max(
                        t.metric(metric) or 0.0
                        for t in points
                        if t.freeze_depth == d and t.status == COMPLETED
                    )
                    for d in done
                ]
                ax.plot(done, best, color="grey", linestyle="--", linewidth=1, marker="_", markersize=14)
            if not points:
                ax.text(0.5, 0.5, "no trial", ha="center", va="center", transform=ax.transAxes)
            ax.grid(alpha=0.3)
        axes[0][col].set_title(target)
        axes[1][col].set_xlabel("target.freeze_depth (frozen bottom layers)")
        if depths:
            axes[1][col].set_xticks(depths)
            axes[1][col].set_xlim(min(depths) - 0.5, max(depths) + 0.5)
    axes[0][0].set_ylabel(f"{TEST_METRIC}\n(completed trials)")
    axes[1][0].set_ylabel(f"{keys.EN_DEV}, last reported\n(hollow: stopped early)")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[task], markeredgecolor="black", label=task)
        for task in tasks
    ]
    handles.append(
        Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="black", label="stopped early")
    )
    handles.append(Line2D([], [], color="grey", linestyle="--", label="best completed per depth"))
    fig.legend(
        handles=handles, title="intermediate", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9
    )
    fig.suptitle("Score vs target freeze depth", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_importances(found: dict[str, dict[str, float] | str], metric: str, path: Path) -> None:
    """(c) Parameter importances per target, or the note explaining their absence."""
    plt = _pyplot()
    targets = list(found)
    fig, axes = plt.subplots(1, len(targets), figsize=(4.6 * len(targets), 3.4), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        value = found[target]
        ax.set_title(target)
        if isinstance(value, str):
            ax.axis("off")
            ax.text(0.5, 0.5, _wrap(value, 38), ha="center", va="center", fontsize=9, transform=ax.transAxes)
            continue
        names = list(value)[::-1]  # most important on top
        ax.barh(names, [value[n] for n in names], color="#4c72b0")
        ax.set_xlim(0, 1)
        ax.set_xlabel("importance (normalised)")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Optuna parameter importance (fANOVA) of each study's objective ({metric})", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_languages(rows: dict[str, dict[str, Trial | None]], path: Path) -> None:
    """(d) Per-language zero-shot scores of each target's winners and best baseline (a dot plot)."""
    plt = _pyplot()
    targets = list(rows)
    fig, axes = plt.subplots(1, len(targets), figsize=(4.6 * len(targets), 4.2), squeeze=False)
    styles = {
        "en_dev winner": ("#4c72b0", "o"),
        "target_dev winner": ("#dd8452", "s"),
        "best baseline": ("#7f7f7f", "^"),
    }
    for ax, target in zip(axes[0], targets, strict=True):
        series = {label: (t, languages_of(t)) for label, t in rows[target].items() if t is not None}
        langs = sorted(
            {lang for _, s in series.values() for lang in s}, key=lambda lang: (lang != "en", lang)
        )
        for label, (trial, scores) in series.items():
            colour, marker = styles.get(label, ("black", "o"))
            ax.plot(
                range(len(langs)),
                [scores.get(lang, math.nan) for lang in langs],
                marker=marker,
                color=colour,
                linewidth=1,
                markersize=7,
                label=f"{label}: {trial.trial_id} ({trial.intermediate_task})",
            )
        ax.set_xticks(range(len(langs)), langs)
        ax.set_title(target)
        ax.set_xlabel("language (en = the source language)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    axes[0][0].set_ylabel("zero-shot score (evaluation split)")
    fig.suptitle("Per-language zero-shot scores of the winners and the best baseline", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_compute(curves: dict[str, list[ComputePoint]], metric: str, path: Path) -> None:
    """(e) Incumbent objective and zero-shot score against cumulative compute, one panel per target."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (target, curve) in zip(axes[0], curves.items(), strict=True):
        shown = [p for p in curve if p.objective is not None]
        if shown:
            hours = [p.gpu_s / 3600 for p in shown]
            ax.step(hours, [p.objective for p in shown], where="post", label=f"incumbent {metric}")
            ax.step(hours, [p.zero_shot for p in shown], where="post", label=f"its {TEST_METRIC}")
            ax.set_xlabel("device-hours spent (cost/gpu_s)")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no priced, completed trial", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(target)
        ax.grid(alpha=0.3)
    fig.suptitle("Score against cumulative compute", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_gain_cost(costs: dict[str, list[CostPoint]], path: Path) -> None:
    """(f) Gain over the baseline against device-hours, one panel per target: a trial a dot, coloured by its
    intermediate task, and the Pareto front as a step line through the trials no other beats on both."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(costs), figsize=(4.6 * len(costs), 3.8), squeeze=False)
    tasks = sorted({p.intermediate for points in costs.values() for p in points})
    colours = {task: plt.get_cmap("tab10")(i % 10) for i, task in enumerate(tasks)}
    for ax, (target, points) in zip(axes[0], costs.items(), strict=True):
        if not points:
            ax.text(
                0.5,
                0.5,
                "no priced trials beside a baseline",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        for task in sorted({p.intermediate for p in points}):
            mine = [p for p in points if p.intermediate == task]
            ax.scatter(
                [p.gpu_s / 3600 for p in mine], [p.gain for p in mine], color=colours[task], label=task, s=24
            )
        front = sorted((p for p in points if p.on_front), key=lambda p: p.gpu_s)
        if front:
            ax.step(
                [p.gpu_s / 3600 for p in front],
                [p.gain for p in front],
                where="post",
                color="black",
                linewidth=1,
                label="Pareto front",
            )
            ax.legend(fontsize=7)
        ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("device-hours (cost/gpu_s)")
        ax.set_title(target)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"gain over no intermediate task ({TEST_METRIC})")
    fig.suptitle("Gain against cost", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_encoder_gains(gains: Sequence[EncoderGain], path: Path) -> None:
    """(g) Gain over each encoder's own no-intermediate trials, per target: a group of bars per encoder
    (smallest first), a bar per intermediate task."""
    plt = _pyplot()
    targets = list(dict.fromkeys(g.target for g in gains))
    fig, axes = plt.subplots(
        1, max(1, len(targets)), figsize=(5.0 * max(1, len(targets)), 3.8), squeeze=False
    )
    tasks = sorted({g.intermediate for g in gains})
    colours = {task: plt.get_cmap("tab10")(i % 10) for i, task in enumerate(tasks)}
    width = 0.8 / max(1, len(tasks))
    for ax, target in zip(axes[0], targets, strict=False):
        mine = [g for g in gains if g.target == target]
        encoders = sorted({g.encoder for g in mine}, key=lambda e: _size_key(mine, e))
        for i, task in enumerate(tasks):
            cells = {g.encoder: g for g in mine if g.intermediate == task}
            xs = [x + i * width for x, e in enumerate(encoders) if e in cells]
            ax.bar(
                xs, [cells[e].gain for e in encoders if e in cells], width, color=colours[task], label=task
            )
        ax.set_xticks(
            [x + 0.4 - width / 2 for x in range(len(encoders))],
            [e.rsplit("/", 1)[-1] for e in encoders],
            rotation=30,
            ha="right",
            fontsize=8,
        )
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title(target)
        ax.legend(fontsize=7)
    if not targets:
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, "no encoder with both baseline and intermediate trials", ha="center")
    axes[0][0].set_ylabel(f"gain over the encoder's none ({TEST_METRIC})")
    fig.suptitle("Gain from intermediate training per encoder (means over completed trials)", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def _size_key(gains: Sequence[EncoderGain], encoder: str) -> tuple[float, str]:
    sizes = [g.parameters for g in gains if g.encoder == encoder and g.parameters is not None]
    return (float(sizes[0]) if sizes else math.inf, encoder)


def plot_gain_vs_size(gains: Sequence[EncoderGain], path: Path) -> None:
    """(h) Gain against the encoder's parameter count (log scale), one line per target and intermediate
    task; encoders the shape table does not know are left out."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    known = [g for g in gains if g.parameters is not None]
    for target, task in sorted({(g.target, g.intermediate) for g in known}):
        line = sorted(
            (g for g in known if (g.target, g.intermediate) == (target, task)),
            key=lambda g: g.parameters or 0,
        )
        ax.plot(
            [(g.parameters or 0) / 1e6 for g in line],
            [g.gain for g in line],
            marker="o",
            label=f"{target}: {task}",
        )
    if known:
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no encoder of known size", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("encoder parameters (millions, log scale)")
    ax.set_ylabel(f"gain over the encoder's none ({TEST_METRIC})")
    ax.set_title("Gain against model size", fontsize=11)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_intermediate_depth(points: Sequence[DepthPoint], path: Path) -> None:
    """(i) Per target, zero_shot_avg (top), seconds per intermediate and target step (middle) and, where the
    trials logged it, each phase's peak memory (bottom) against intermediate.freeze_depth; colour =
    intermediate task; the none trials' score is a grey line."""
    plt = _pyplot()
    targets = list(dict.fromkeys(p.target for p in points))
    measure = memory_measure(points)
    rows = 3 if measure else 2
    fig, axes = plt.subplots(
        rows, max(1, len(targets)), figsize=(4.6 * max(1, len(targets)), 3.2 * rows), squeeze=False
    )
    tasks = sorted({p.intermediate for p in points} - {BASELINE})
    colours = {task: plt.get_cmap("tab10")(i % 10) for i, task in enumerate(tasks)}
    # Each lower row: one series per phase (o intermediate, x target) of one DepthPoint field; the memory row
    # only the points of the measure it draws.
    series = [(1, ("intermediate_step_s", "target_step_s"))]
    if measure:
        series.append((2, ("intermediate_peak_mib", "target_peak_mib")))
    for col, target in enumerate(targets):
        mine = [p for p in points if p.target == target]
        top = axes[0][col]
        base = [p.score for p in mine if p.intermediate == BASELINE]
        if base:
            top.axhline(sum(base) / len(base), color="#7f7f7f", linestyle="--", label="none (mean)")
        for task in tasks:
            cells = [p for p in mine if p.intermediate == task and p.intermediate_depth is not None]
            top.scatter(
                [p.intermediate_depth for p in cells],
                [p.score for p in cells],
                color=colours[task],
                label=task,
                s=20,
            )
            for row, fields in series:
                measured = [p for p in cells if row == 1 or p.memory_measure == measure]
                for field, marker in zip(fields, ("o", "x"), strict=True):
                    shown = [p for p in measured if getattr(p, field) is not None]
                    axes[row][col].scatter(
                        [p.intermediate_depth for p in shown],
                        [getattr(p, field) for p in shown],
                        color=colours[task],
                        marker=marker,
                        s=20,
                    )
        top.set_title(target)
        top.legend(fontsize=7)
        axes[rows - 1][col].set_xlabel("intermediate.freeze_depth")
    axes[0][0].set_ylabel(TEST_METRIC)
    axes[1][0].set_ylabel("s per step (o intermediate, x target)")
    if measure:
        axes[2][0].set_ylabel(f"{MEMORY_MEASURES[measure][1]} (o, x)")
    title = "score, step time and peak memory" if measure else "score and step time"
    fig.suptitle(f"Intermediate-phase freeze depth: {title}", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


__all__ = [
    "plot_compute",
    "plot_encoder_gains",
    "plot_freeze_depth",
    "plot_gain_cost",
    "plot_gain_vs_size",
    "plot_heatmap",
    "plot_importances",
    "plot_intermediate_depth",
    "plot_languages",
]
