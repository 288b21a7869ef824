"""``xstilts report``: plots and a Markdown summary of a search, also logged to MLflow.

Five PNGs (matplotlib, Agg backend) and ``summary.md`` under ``reports/<search>``:

(a) ``gain_heatmap.png``: the gain of each intermediate task over the no-intermediate baseline per
    target, as in Phang et al. (2020): rows intermediate tasks, columns targets, value = the best
    completed trial with that intermediate task minus the best completed baseline trial, both on
    ``zero_shot_avg`` ("best" by ``--pick``, zero_shot_avg itself by default);
(b) ``freeze_depth.png``: per target, zero_shot_avg of the completed trials and the last en_dev of
    every ended trial (hollow: stopped early) against the target phase's freeze depth;
(c) ``importance.png``: Optuna parameter importances of each target's study (loaded from the
    search's Optuna RDB), or a note where a study has too few finished trials;
(d) ``winners_languages.png``: per-language zero-shot scores of the en_dev and target_dev winners
    and of the best baseline trial;
(e) ``compute.png``: per target, the incumbent (the best completed trial so far on the search's
    objective) and its zero_shot_avg against the compute the target's trials had spent by then
    (``cost/gpu_s``, trials in start order).

The files are logged as artifacts (``report/``) of the search's latest selection run
(``xstilts.kind=selection``), or of a new one when ``xstilts select`` has not been run yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import tracking
from search.select import (
    COMPLETED,
    CRITERIA,
    EXPERIMENT_PREFIX,
    SELECTION_KIND,
    TEST_METRIC,
    SelectionError,
    Trial,
    open_search,
    rank,
    status_counts,
)
from trainers.keys import COST_GPU_S

BASELINE = "none"
"""The intermediate_task value of the no-intermediate baseline."""
PICKS = ("zero_shot_avg", "en_dev", "target_dev")
"""How the best trial of a heatmap cell is chosen: by its zero-shot test score, or by a selection criterion."""
MIN_IMPORTANCE_TRIALS = 4
"""Fewer finished trials than this make importances meaningless (Optuna returns uniform weights)."""
REPORT_ARTIFACT_DIR = "report"


@dataclass
class ReportOptions:
    """Command-line options of ``xstilts report``."""

    search: str
    out: str | None = None
    """Output directory (default: reports/<search>)."""
    tracking_uri: str | None = None
    storage: str = "runs/searches"
    """The search's --storage: its Optuna RDB is <storage>/<search>/optuna.db."""
    pick: str = "zero_shot_avg"
    """How the heatmap chooses the best trial per (intermediate task, target) cell."""
    log: bool = True
    """Also log the files to MLflow."""


@dataclass
class Heatmap:
    """Gains over the baseline: ``values[row][col]`` (NaN where a cell has no completed trial)."""

    rows: list[str]
    """Intermediate tasks."""
    cols: list[str]
    """Targets."""
    values: list[list[float]]
    baseline: dict[str, float]
    """Per target: the best baseline trial's zero_shot_avg (NaN without one)."""
    counts: list[list[int]] = field(default_factory=list)
    """Completed trials behind each cell."""
    baseline_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Report:
    """What ``report`` wrote."""

    search: str
    out: Path
    files: list[Path]
    heatmap: Heatmap
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None


# -- the numbers ------------------------------------------------------------------------------------


def best_trial(trials: Sequence[Trial], pick: str) -> Trial | None:
    """The best completed trial by ``pick`` (a criterion, or zero_shot_avg), or None."""
    if pick in CRITERIA:
        ranking = rank(trials, pick)
        return ranking[0] if ranking else None
    eligible = [t for t in trials if t.status == COMPLETED and t.metric(pick) is not None]
    # The same deterministic tie-break as select: higher value, earlier start, then run id.
    eligible.sort(key=lambda t: (-(t.metric(pick) or 0.0), t.start_time, t.run_id))
    return eligible[0] if eligible else None


def gain_heatmap(trials: Sequence[Trial], targets: Sequence[str], pick: str = TEST_METRIC) -> Heatmap:
    """Gain of each intermediate task over the baseline per target, on zero_shot_avg."""
    tasks = sorted({t.intermediate_task for t in trials if t.status == COMPLETED} - {BASELINE})
    heatmap = Heatmap(tasks, list(targets), [[math.nan] * len(targets) for _ in tasks], {})
    heatmap.counts = [[0] * len(targets) for _ in tasks]
    for col, target in enumerate(targets):
        mine = [t for t in trials if t.target == target and t.status == COMPLETED]
        base_trials = [t for t in mine if t.intermediate_task == BASELINE]
        base = best_trial(base_trials, pick)
        base_score = base.metric(TEST_METRIC) if base is not None else None
        heatmap.baseline[target] = base_score if base_score is not None else math.nan
        heatmap.baseline_counts[target] = len(base_trials)
        for row, task in enumerate(tasks):
            cell = [t for t in mine if t.intermediate_task == task]
            heatmap.counts[row][col] = len(cell)
            best = best_trial(cell, pick)
            score = best.metric(TEST_METRIC) if best is not None else None
            if score is not None and base_score is not None:
                heatmap.values[row][col] = score - base_score
    return heatmap


def optuna_db(storage: str, search: str) -> Path:
    """Where search.tuner keeps the search's Optuna RDB (a remote storage keeps it under ~/.xstilts)."""
    root = Path("~/.xstilts").expanduser() if "://" in storage else Path(storage).expanduser().resolve()
    return root / search / "optuna.db"


def importances(db: Path, search: str, targets: Sequence[str]) -> dict[str, dict[str, float] | str]:
    """Per target: Optuna's parameter importances of study ``<search>.<target>``, or why there are none."""
    if not db.is_file():
        return dict.fromkeys(targets, f"no Optuna database at {db} (pass the search's --storage)")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    out: dict[str, dict[str, float] | str] = {}
    for target in targets:
        name = f"{search}.{target}"
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            out[target] = f"no study {name} in {db}"
            continue
        out[target] = _study_importances(study)
    return out


def _study_importances(study: Any) -> dict[str, float] | str:
    """Importances of one study, or a note when it has too few finished trials."""
    import optuna

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(finished) < MIN_IMPORTANCE_TRIALS:
        return (
            f"too few finished trials ({len(finished)} < {MIN_IMPORTANCE_TRIALS}) for parameter importances"
        )
    try:
        # fANOVA (seeded: deterministic) is steadier than the default PED-ANOVA on a handful of trials;
        # it needs scikit-learn, which MLflow already installs.
        evaluator: Any = optuna.importance.FanovaImportanceEvaluator(seed=0)
        import sklearn  # noqa: F401
    except ImportError:
        evaluator = None
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as error:
        return f"Optuna could not compute importances: {error}"
    return {str(name): float(value) for name, value in found.items()}


def languages_of(trial: Trial, prefix: str = "zero_shot") -> dict[str, float]:
    """Per-language scores ``<prefix>/<lang>`` of a trial (not the per-metric sub-keys)."""
    scores = {}
    for key, value in trial.metrics.items():
        head, _, lang = key.partition("/")
        if head == prefix and lang and "/" not in lang and math.isfinite(value):
            scores[lang] = value
    return dict(sorted(scores.items(), key=lambda kv: (kv[0] != "en", kv[0])))


# -- the plots --------------------------------------------------------------------------------------


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
    fig.colorbar(image, ax=ax, label="zero_shot_avg gain (points)")
    _save(fig, path)


def plot_freeze_depth(trials: Sequence[Trial], targets: Sequence[str], path: Path) -> None:
    """(b) Scores against target.freeze_depth, per target (columns); colour = intermediate task.

    Top row: zero_shot_avg of the completed trials. Bottom row: the last reported en_dev of every
    trial that ended, hollow for those ASHA stopped early, which shows the depths that never finished.
    """
    plt = _pyplot()
    ended = [t for t in trials if t.status in (COMPLETED, "early_stopped") and t.freeze_depth is not None]
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
            (axes[1][col], mine, "en_dev"),
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
    axes[0][0].set_ylabel("zero_shot_avg\n(completed trials)")
    axes[1][0].set_ylabel("en_dev, last reported\n(hollow: stopped early)")
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
    if not mine or any(
        t.metric(COST_GPU_S) is None for t in mine if t.status in (COMPLETED, "early_stopped")
    ):
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


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# -- Markdown -------------------------------------------------------------------------------------


def summary_markdown(
    search: str,
    trials: Sequence[Trial],
    targets: Sequence[str],
    heatmap: Heatmap,
    found: dict[str, dict[str, float] | str],
    winners: dict[str, dict[str, Trial | None]],
    pick: str,
    metric: str,
) -> str:
    """The report's Markdown: counts, winners, gains, importances and the plots."""
    lines = [
        f"# Search `{search}`",
        "",
        "| target | completed | early-stopped | failed | running |",
        "|---|---:|---:|---:|---:|",
    ]
    for target in targets:
        counts = status_counts(t for t in trials if t.target == target)
        lines.append(
            f"| {target} | {counts['completed']} | {counts['early_stopped']} | {counts['failed']} | {counts['running']} |"
        )
    lines += [
        "",
        "## Winners",
        "",
        "Selected among completed trials by `en_dev` (English dev, strict zero-shot) and by `target_dev` "
        "(`target_dev_avg_non_en`, oracle); `zero_shot_avg` is the test score and is never used to select.",
        "",
        "| target | criterion | trial | intermediate | freeze | en_dev | target_dev_avg_non_en | zero_shot_avg |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    disagree = 0
    for target in targets:
        picked = winners[target]
        first, second = picked.get("en_dev winner"), picked.get("target_dev winner")
        disagree += bool(first and second and first.run_id != second.run_id)
        for label, trial in picked.items():
            if trial is None:
                lines.append(f"| {target} | {label} | n/a | | | | | |")
                continue
            scores = " | ".join(_fmt(trial.metric(m)) for m in (*CRITERIA.values(), TEST_METRIC))
            lines.append(
                f"| {target} | {label} | {trial.trial_id} | {trial.intermediate_task} | {trial.freeze_depth} | {scores} |"
            )
    lines += ["", f"The two criteria pick different trials on {disagree} of {len(targets)} target(s).", ""]
    how = (
        "the best trial by zero_shot_avg (an upper bound: it peeks at test scores)"
        if pick == TEST_METRIC
        else f"the trial chosen by {pick}"
    )
    lines += [
        "## Gain over no intermediate task (zero_shot_avg)",
        "",
        f"Per cell: {how} with that intermediate task, minus the same for the baseline (`none`).",
        "",
        "| intermediate | " + " | ".join(heatmap.cols) + " |",
        "|---|" + "---:|" * len(heatmap.cols),
    ]
    for task, row in zip(heatmap.rows, heatmap.values, strict=True):
        lines.append(f"| {task} | " + " | ".join(_fmt(v, signed=True) for v in row) + " |")
    lines.append("| *baseline score* | " + " | ".join(_fmt(heatmap.baseline[c]) for c in heatmap.cols) + " |")
    lines += ["", f"## Parameter importance (Optuna, objective {metric})", ""]
    lines.append(
        "Optuna sees early-stopped trials with their last reported value, so importances also reflect "
        "which settings ASHA stopped early."
    )
    lines.append("")
    for target, value in found.items():
        if isinstance(value, str):
            lines.append(f"- **{target}**: {value}")
        else:
            lines.append(f"- **{target}**: " + ", ".join(f"{k} {v:.2f}" for k, v in value.items()))
    lines += [
        "",
        "## Plots",
        "",
        "![gain heatmap](gain_heatmap.png)",
        "",
        "![score vs freeze depth](freeze_depth.png)",
        "",
        "![parameter importance](importance.png)",
        "",
        "![per-language scores of the winners](winners_languages.png)",
        "",
        "![score against cumulative compute](compute.png)",
        "",
    ]
    return "\n".join(lines)


# -- the whole report ---------------------------------------------------------------------------


def winners_by_target(trials: Sequence[Trial], targets: Sequence[str]) -> dict[str, dict[str, Trial | None]]:
    """Per target: the en_dev winner, the target_dev winner and the best baseline (by en_dev)."""
    out = {}
    for target in targets:
        mine = [t for t in trials if t.target == target]
        baseline = [t for t in mine if t.intermediate_task == BASELINE]
        out[target] = {
            "en_dev winner": best_trial(mine, "en_dev"),
            "target_dev winner": best_trial(mine, "target_dev"),
            "best baseline": best_trial(baseline, "en_dev") or best_trial(baseline, TEST_METRIC),
        }
    return out


def report(options: ReportOptions) -> Report:
    """Compute, plot and write the report; log it to the search's selection run."""
    if options.pick not in PICKS:
        raise SelectionError(f"unknown --pick {options.pick!r}; use one of {', '.join(PICKS)}")
    client, experiment, trials, parent, targets = open_search(options.search, options.tracking_uri)
    if not any(t.status == COMPLETED for t in trials):
        raise SelectionError(f"search {options.search} has no completed trial to report on")
    out = Path(options.out or f"reports/{options.search}")
    heatmap = gain_heatmap(trials, targets, options.pick)
    metric = _objective(client, parent)
    found = importances(optuna_db(options.storage, options.search), options.search, targets)
    winners = winners_by_target(trials, targets)
    files = [
        out / name
        for name in (
            "gain_heatmap.png",
            "freeze_depth.png",
            "importance.png",
            "winners_languages.png",
            "compute.png",
        )
    ]
    plot_heatmap(heatmap, options.pick, files[0])
    plot_freeze_depth(trials, targets, files[1])
    plot_importances(found, metric, files[2])
    plot_languages(winners, files[3])
    plot_compute({t: compute_curve(trials, t, metric) for t in targets}, metric, files[4])
    summary = out / "summary.md"
    summary.write_text(
        summary_markdown(options.search, trials, targets, heatmap, found, winners, options.pick, metric)
    )
    files.append(summary)
    notes = [f"{t}: {v}" for t, v in found.items() if isinstance(v, str)]
    result = Report(options.search, out, files, heatmap, notes)
    if options.log:
        result.run_id = log_report(client, experiment, parent, options.search, files)
    return result


def _objective(client: Any, parent: str | None) -> str:
    """The studies' objective: tuner.metric of the space file the parent run names, if still readable."""
    if parent is None:
        return "tuner.metric"
    space = client.get_run(parent).data.params.get("space")
    try:
        from search.space import load_space

        return load_space(space).tuner.metric if space else "tuner.metric"
    except (OSError, ValueError):  # moved or edited since the search: the name is only a label
        return "tuner.metric"


def summary_run(client: Any, experiment: str, parent: str | None, search: str) -> str:
    """The search's latest selection run, or a new one (tagged xstilts.kind=selection)."""
    query = f"tags.`{tracking.KIND_TAG}` = '{SELECTION_KIND}' and tags.`{tracking.SEARCH_TAG}` = '{search}'"
    runs = client.search_runs(
        [experiment], filter_string=query, max_results=1, order_by=["attributes.start_time DESC"]
    )
    if runs:
        return str(runs[0].info.run_id)
    tags = {tracking.SEARCH_TAG: search, tracking.KIND_TAG: SELECTION_KIND}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(experiment, run_name="report", tags=tags)
    client.set_terminated(run.info.run_id, status="FINISHED")
    return str(run.info.run_id)


def log_report(client: Any, experiment: str, parent: str | None, search: str, files: Sequence[Path]) -> str:
    """Log the report files under ``report/`` of the summary run; return its id."""
    run_id = summary_run(client, experiment, parent, search)
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path=REPORT_ARTIFACT_DIR)
    return run_id


def format_report(result: Report) -> str:
    """The CLI output."""
    lines = [f"report of search {result.search} in {result.out}:"]
    lines += [f"  {path}" for path in result.files]
    lines += [f"  note: {note}" for note in result.notes]
    if result.run_id:
        lines.append(
            f"MLflow: logged under {REPORT_ARTIFACT_DIR}/ of run {result.run_id} "
            f"(experiment {EXPERIMENT_PREFIX}-{result.search})"
        )
    return "\n".join(lines)


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


__all__ = [
    "Heatmap",
    "Report",
    "ReportOptions",
    "best_trial",
    "format_report",
    "gain_heatmap",
    "importances",
    "optuna_db",
    "report",
]
