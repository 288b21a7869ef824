"""``xstilts report``: plots and a Markdown summary of a search, also logged to MLflow.

Six PNGs (matplotlib, Agg backend) and ``summary.md`` under ``reports/<search>``:

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
    (``cost/gpu_s``, trials in start order);
(f) ``gain_cost.png``: per target, each completed trial's gain over the no-intermediate baseline (its
    zero_shot_avg minus the mean of the target's completed baseline trials) against its cost
    (``cost/gpu_s``, as logged: a trial that reused a cached intermediate encoder did not pay for it),
    with the Pareto front (no other trial gains more for less).

When the completed trials used more than one encoder (spaces/encoders.yaml, scale.yaml; ``search/report_scale.py``):

(g) ``encoder_gains.png``: per target, each intermediate task's gain over the same encoder's ``none`` trials
    (means over completed trials, so seeds average out), a group of bars per encoder, smallest first;
(h) ``gain_size.png``: the same gains against the encoder's parameter count (log scale), a line per target
    and intermediate task.

When they froze the intermediate phase at more than one depth (spaces/freeze.yaml):

(i) ``intermediate_depth.png``: per target, zero_shot_avg, seconds per intermediate and target step
    (``time/<phase>_step_s``) and, where the trials logged it, each phase's peak memory
    (``memory/<phase>_cuda_peak_mib``, or on CPU ``memory/<phase>_rss_peak_mib``) against
    ``intermediate.freeze_depth``.

Retrieval targets evaluated without trials (``search/retrieval_eval.py``) are a table in ``summary.md``
(``search/retrieval_table.py``), not columns of the plots; a search of retrieval targets alone gets
``summary.md`` with their tables only.

The files are logged as artifacts (``report/``) of the search's latest selection run
(``xstilts.kind=selection``), or of a new one when ``xstilts select`` has not been run yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.layout import DEFAULT_STORAGE, SearchLayout
from search.report_costs import (
    ComputePoint,
    CostPoint,
    compute_curve,
    cost_markdown,
    gain_cost_points,
    pareto_front,
)
from search.report_plots import (
    plot_compute,
    plot_encoder_gains,
    plot_freeze_depth,
    plot_gain_cost,
    plot_gain_vs_size,
    plot_heatmap,
    plot_importances,
    plot_intermediate_depth,
    plot_languages,
)
from search.report_scale import depth_points, encoder_gains, varies_encoder, varies_intermediate_depth
from search.results import (
    CRITERIA,
    TEST_METRIC,
    ResultsError,
    Trial,
    languages_of,
    latest_run_of_kind,
    open_search,
    rank,
    status_counts,
)
from search.retrieval_table import RetrievalTable, retrieval_tables, table_markdown
from search.space import NO_INTERMEDIATE as BASELINE
from trainers import keys
from trainers.keys import COMPLETED, EARLY_STOPPED

PICKS = (TEST_METRIC, *CRITERIA)
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
    storage: str = DEFAULT_STORAGE
    """The search's --storage: its Optuna RDB is <storage>/<search>/optuna.db."""
    pick: str = TEST_METRIC
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
    return SearchLayout(search, storage).optuna_db


def importances(db: Path, search: str, targets: Sequence[str]) -> dict[str, dict[str, float] | str]:
    """Per target: Optuna's parameter importances of study ``<search>.<target>``, or why there are none."""
    if not db.is_file():
        return dict.fromkeys(targets, f"no Optuna database at {db} (pass the search's --storage)")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    out: dict[str, dict[str, float] | str] = {}
    for target in targets:
        name = SearchLayout(search).study_name(target)
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


# -- the plots --------------------------------------------------------------------------------------


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
    costs: dict[str, list[CostPoint]] | None = None,
    retrieval: Sequence[RetrievalTable] = (),
) -> str:
    """The report's Markdown: counts, winners, gains, gains against cost, importances, the retrieval
    targets' tables and the plots."""
    lines = [
        f"# Search `{search}`",
        "",
        "| target | completed | early-stopped | failed | running |",
        "|---|---:|---:|---:|---:|",
    ]
    for target in targets:
        counts = status_counts(t for t in trials if t.target == target)
        lines.append(
            f"| {target} | "
            + " | ".join(
                str(counts[status]) for status in (COMPLETED, EARLY_STOPPED, keys.FAILED, keys.RUNNING)
            )
            + " |"
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
    lines += cost_markdown(costs or {})
    lines += ["", *table_markdown(retrieval)] if retrieval else []
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
        "![gain against cost, Pareto front](gain_cost.png)",
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
        raise ResultsError(f"unknown --pick {options.pick!r}; use one of {', '.join(PICKS)}")
    found_search = open_search(options.search, options.tracking_uri)
    tables = retrieval_tables(found_search)
    trials = found_search.trials
    # A retrieval target evaluated without trials has its table, not a column of the trials' views.
    targets = [t for t in found_search.targets if t not in tables or found_search.of(t)]
    if not any(t.status == COMPLETED for t in trials) and not any(t.rows for t in tables.values()):
        raise ResultsError(f"search {options.search} has no completed trial to report on")
    out = Path(options.out or f"reports/{options.search}")
    heatmap = gain_heatmap(trials, targets, options.pick)
    if not targets:  # a search of retrieval targets alone: their tables are the whole report
        out.mkdir(parents=True, exist_ok=True)
        summary = out / "summary.md"
        text = [f"# Search `{options.search}`", "", *table_markdown(list(tables.values()))]
        summary.write_text("\n".join(text) + "\n")
        only = Report(options.search, out, [summary], heatmap)
        if options.log:
            client, experiment = found_search.client, found_search.experiment
            only.run_id = log_report(client, experiment, found_search.parent, options.search, [summary])
        return only
    metric = found_search.objective()
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
            "gain_cost.png",
        )
    ]
    plot_heatmap(heatmap, options.pick, files[0])
    plot_freeze_depth(trials, targets, files[1])
    plot_importances(found, metric, files[2])
    plot_languages(winners, files[3])
    plot_compute({t: compute_curve(trials, t, metric) for t in targets}, metric, files[4])
    costs = {t: gain_cost_points(trials, t) for t in targets}
    plot_gain_cost(costs, files[5])
    if varies_encoder(trials):
        gains = encoder_gains(trials, targets)
        files += [out / "encoder_gains.png", out / "gain_size.png"]
        plot_encoder_gains(gains, files[-2])
        plot_gain_vs_size(gains, files[-1])
    depths = depth_points([t for t in trials if t.target in targets])
    if varies_intermediate_depth(depths):
        files.append(out / "intermediate_depth.png")
        plot_intermediate_depth(depths, files[-1])
    summary = out / "summary.md"
    summary.write_text(
        summary_markdown(
            options.search,
            trials,
            targets,
            heatmap,
            found,
            winners,
            options.pick,
            metric,
            costs,
            list(tables.values()),
        )
    )
    files.append(summary)
    notes = [f"{t}: {v}" for t, v in found.items() if isinstance(v, str)]
    result = Report(options.search, out, files, heatmap, notes)
    if options.log:
        result.run_id = log_report(
            found_search.client, found_search.experiment, found_search.parent, options.search, files
        )
    return result


def summary_run(client: Any, experiment: str, parent: str | None, search: str) -> str:
    """The search's latest selection run, or a new one (tagged xstilts.kind=selection)."""
    latest = latest_run_of_kind(client, experiment, search, keys.KIND_SELECTION)
    if latest is not None:
        return latest
    tags = {keys.SEARCH_TAG: search, keys.KIND_TAG: keys.KIND_SELECTION}
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
            f"(experiment {SearchLayout(result.search).experiment_name})"
        )
    return "\n".join(lines)


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


__all__ = [
    "ComputePoint",
    "CostPoint",
    "Heatmap",
    "Report",
    "ReportOptions",
    "best_trial",
    "compute_curve",
    "format_report",
    "gain_cost_points",
    "gain_heatmap",
    "importances",
    "languages_of",
    "optuna_db",
    "pareto_front",
    "report",
]
