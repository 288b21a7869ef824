"""What ``xstilts select`` prints and logs: the summary, the ranking tables (Markdown, CSV), the summary
run's metrics and the best-config files' text. It renders a ``Selection``; deciding is ``search/select.py``."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from search.layout import SearchLayout
from search.results import CRITERIA, CRITERION_LABELS, TEST_METRIC, other
from search.retrieval_table import table_lines
from trainers import keys

if TYPE_CHECKING:  # select imports this module: the types only, never at run time
    from search.select import Selection, TargetSelection


def config_text(selected: TargetSelection, search: str) -> str:
    """The best-config file: provenance as YAML comments, then the resolved config (own output_dir)."""
    winner = selected.winner
    lines = [
        f"# Best configuration of target {selected.target} in search {search} (written by xstilts select).",
        f"# Criterion {CRITERION_LABELS[selected.criterion]}.",
        f"# Trial {winner.trial_id}, MLflow run {winner.run_id}: "
        + ", ".join(f"{m}={_fmt(winner.metric(m))}" for m in (*CRITERIA.values(), TEST_METRIC)),
    ]
    if selected.confirm:
        best = selected.confirm[0]
        lines.append(
            f"# Confirmed over seeds {','.join(map(str, best.seeds))}: mean {best.mean:.2f} +/- {best.std:.2f}"
            + (" (a tie with the runner-up within the seed spread)" if selected.tie else "")
        )
    lines.append("# Run it with: xstilts run --config <this file>")
    # The trial wrote under the search's storage; a re-run gets a directory of its own.
    config = dataclasses.replace(selected.config, output_dir=f"runs/best/{search}/{selected.target}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(config.to_dict(), sort_keys=False)


# -- the rankings -------------------------------------------------------------------------------------


RANKING_COLUMNS = (
    "target",
    "criterion",
    "rank",
    "trial_id",
    "run_id",
    "intermediate_task",
    "freeze_depth",
    *CRITERIA.values(),
    TEST_METRIC,
    "selected",
)


def ranking_rows(selection: Selection) -> list[dict[str, Any]]:
    """One row per (target, criterion, ranked trial), for the CSV and Markdown artifacts."""
    rows = []
    for selected in selection.targets:
        for criterion, ranking in selected.rankings.items():
            for position, trial in enumerate(ranking, start=1):
                rows.append(
                    {
                        "target": selected.target,
                        "criterion": criterion,
                        "rank": position,
                        "trial_id": trial.trial_id,
                        "run_id": trial.run_id,
                        "intermediate_task": trial.intermediate_task,
                        "freeze_depth": trial.freeze_depth,
                        **{m: trial.metric(m) for m in (*CRITERIA.values(), TEST_METRIC)},
                        "selected": trial.run_id == selected.winner.run_id,
                    }
                )
    return rows


def ranking_csv(selection: Selection) -> str:
    """The rankings as CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RANKING_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(ranking_rows(selection))
    return buffer.getvalue()


def confirm_csv(selection: Selection) -> str:
    """Every --confirm re-run score as CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["target", "trial_id", "run_id", "seed", CRITERIA[selection.criterion], TEST_METRIC])
    for selected in selection.targets:
        for scores in selected.confirm:
            for seed, score, test in zip(scores.seeds, scores.scores, scores.test_scores, strict=True):
                writer.writerow(
                    [selected.target, scores.trial.trial_id, scores.trial.run_id, seed, score, test]
                )
    return buffer.getvalue()


def ranking_markdown(selection: Selection) -> str:
    """The summary and both rankings of every target as Markdown."""
    lines = [f"# Selection for search `{selection.search}`", "", "```text", *_summary_lines(selection), "```"]
    for selected in selection.targets:
        for criterion, ranking in selected.rankings.items():
            lines += ["", f"## {selected.target}: ranked by {criterion} ({CRITERIA[criterion]})", ""]
            lines.append(
                "| rank | trial | intermediate | freeze | "
                + " | ".join((*CRITERIA.values(), TEST_METRIC))
                + " | selected |"
            )
            lines.append("|---:|---|---|---:|---:|---:|---:|---|")
            for position, trial in enumerate(ranking, start=1):
                cells = [
                    str(position),
                    trial.trial_id,
                    trial.intermediate_task,
                    str(trial.freeze_depth),
                    *(_fmt(trial.metric(m)) for m in (*CRITERIA.values(), TEST_METRIC)),
                    "**yes**" if trial.run_id == selected.winner.run_id else "",
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _winner_line(selected: TargetSelection, criterion: str) -> str:
    trial = selected.top(criterion)
    label = f"{criterion} winner".ljust(18)
    if trial is None:
        return f"  {label}n/a (no completed trial has {CRITERIA[criterion]})"
    scores = "  ".join(f"{m}={_fmt(trial.metric(m))}" for m in (*CRITERIA.values(), TEST_METRIC))
    return f"  {label}{trial.describe()}  {scores}"


def _summary_lines(selection: Selection) -> list[str]:
    """The human summary (shared by the CLI output and the Markdown artifact)."""
    lines = [
        f"search {selection.search}: selecting by {CRITERION_LABELS[selection.criterion]} "
        "(completed trials only)"
    ]
    for selected in selection.targets:
        counts = ", ".join(f"{n} {s.replace('_', '-')}" for s, n in selected.counts.items() if n)
        lines.append(f"{selected.target}: {counts}")
        lines += [_winner_line(selected, c) for c in CRITERIA]
        tau = selected.kendall_tau
        agreement = {None: "only one criterion can rank", True: "winners DISAGREE", False: "winners agree"}[
            selected.disagree
        ]
        lines.append(f"  {agreement}; Kendall tau of the two rankings = {_fmt(tau)}")
        for position, scores in enumerate(selected.confirm):
            lines.append(
                f"  confirm #{position + 1} {scores.trial.describe()}: {CRITERIA[selection.criterion]} "
                f"{scores.mean:.2f} +/- {scores.std:.2f} over seeds {','.join(map(str, scores.seeds))}"
                f"  ({TEST_METRIC} {_mean(scores.test_scores)})"
            )
        if selected.confirm and len(selected.confirm) > 1:
            verdict = "TIE (lead below the seed spread)" if selected.tie else "clear win"
            lines.append(f"  confirm verdict: {verdict}")
        selected_line = f"  selected: {selected.winner.describe()}"
        if selected.path is not None:
            selected_line += f" -> {selected.path}"
        lines.append(selected_line)
    for target, reason in selection.not_selected.items():
        lines.append(f"{target}: NOT SELECTED: {reason}")
    for table in selection.retrieval.values():
        lines += table_lines(table)
    lines.append(
        f"the en_dev and target_dev winners disagree on {selection.disagreements} of "
        f"{selection.comparable} target(s) (Keung et al. 2020: English dev selection is unreliable for transfer)"
    )
    return lines


def format_selection(selection: Selection) -> str:
    """The CLI output."""
    lines = _summary_lines(selection)
    if selection.run_id:
        lines.append(
            f"MLflow: selection run {selection.run_id} in experiment {SearchLayout(selection.search).experiment_name} "
            f"at {selection.uri}; winners tagged {keys.BEST_TAG}=true"
        )
    return "\n".join(lines)


def summary_metrics(selection: Selection) -> dict[str, float]:
    """Metrics of the summary run: per target the winners' scores, plus the disagreement count."""
    metrics: dict[str, float] = {
        "targets": float(len(selection.targets)),
        "disagreements": float(selection.disagreements),
    }
    for selected in selection.targets:
        prefix = selected.target
        for name in (*CRITERIA.values(), TEST_METRIC):
            value = selected.winner.metric(name)
            if value is not None:
                metrics[f"{prefix}/{name}"] = value
        oracle = selected.top(other(selection.criterion))
        if oracle is not None and oracle.metric(TEST_METRIC) is not None:
            metrics[f"{prefix}/{other(selection.criterion)}_winner_{TEST_METRIC}"] = (
                oracle.metric(TEST_METRIC) or 0.0
            )
        metrics[f"{prefix}/completed"] = float(selected.counts[keys.COMPLETED])
        if selected.disagree is not None:
            metrics[f"{prefix}/disagree"] = float(selected.disagree)
        if selected.kendall_tau is not None:
            metrics[f"{prefix}/kendall_tau"] = selected.kendall_tau
        if selected.confirm:
            metrics[f"{prefix}/confirm_mean"] = selected.confirm[0].mean
            metrics[f"{prefix}/confirm_std"] = selected.confirm[0].std
            metrics[f"{prefix}/confirm_tie"] = float(selected.tie)
    return metrics


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _mean(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return _fmt(statistics.fmean(finite)) if finite else "n/a"


__all__ = [
    "RANKING_COLUMNS",
    "config_text",
    "confirm_csv",
    "format_selection",
    "ranking_csv",
    "ranking_markdown",
    "ranking_rows",
    "summary_metrics",
]
