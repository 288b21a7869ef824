"""``xstilts select``: pick the best transfer configuration of every target of a finished search.

A search (``search/tuner.py``) leaves one MLflow child run per trial. For each target this module
ranks the *completed* trials (early-stopped and failed ones never ran their full budget, so their
scores are not comparable) by an explicit criterion:

- ``en_dev``: the English dev score, strict zero-shot selection (the default);
- ``target_dev``: ``target_dev_avg_non_en``, the mean over the target-language dev sets, an oracle
  that uses target-language labels.

Retrieval targets (BUCC, Tatoeba) are evaluated, not searched (``search/retrieval_eval.py``): they have
no trials, so nothing is selected for them; their scores on the base and on each intermediate checkpoint
are shown as a table (``search/retrieval_table.py``). In a store written before that, their trials have
no English dev set, so ``en_dev`` cannot rank them; BUCC's ``target_dev`` is its dev F1 at a threshold
tuned on that dev set (an oracle), and XTREME's Tatoeba has no dev split at all. A target no metric can
rank is reported as not selected, and the other targets are selected as usual.

Both rankings' winners are always shown, with how often they disagree (Keung et al. 2020, "Don't
use English dev"). The winner's resolved TransferConfig (its ``config.yaml`` artifact) is written
atomically to ``<out>/<target>.yaml``, which ``xstilts run --config`` runs as is; the winning run is
tagged ``best=true``; a summary run (``xstilts.kind=selection``) holds the ranking and metrics.
``--confirm K`` re-runs the top K with fresh seeds and selects on the mean.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import tracking
from search.results import (
    CRITERIA,
    TEST_METRIC,
    ResultsError,
    SearchResults,
    Trial,
    load_config,
    load_trials,
    open_search,
    open_store,
    other,
    rank,
    search_experiment,
    status_counts,
    trial_status,
)
from search.retrieval_table import RetrievalTable, retrieval_tables
from search.select_output import (
    config_text,
    confirm_csv,
    format_selection,
    ranking_csv,
    ranking_markdown,
    summary_metrics,
)
from trainers import keys
from trainers._atomic import write_text_atomic
from trainers.config import TransferConfig

SelectionError = ResultsError
"""A selection that cannot be made (one line: what is wrong and what exists); the read side's error, so
one type covers every refusal of ``xstilts select`` whether reading the search or deciding on it."""
SELECTION_KIND = keys.KIND_SELECTION
BEST_TAG = keys.BEST_TAG
BEST_CRITERION_TAG = keys.BEST_CRITERION_TAG
BEST_CONFIRM_TAG = "best.confirm"
COMPLETED = keys.COMPLETED


class NoSelectionMetric(SelectionError):
    """A target whose completed trials lack the criterion's metric: reported, the others still selected."""


RETRIEVAL_EVALUATED = (
    "a retrieval target is evaluated on every encoder the search made, not searched: it has no trials and no "
    "dev metric to select on (its table below has test scores only)"
)
"""Why a retrieval target of a search that evaluated it (``search/retrieval_eval.py``) gets no best config."""

RETRIEVAL_NOTE = (
    "a retrieval target has no English dev set, so no en_dev; its target_dev is the language pairs' dev "
    "score where a dev split exists (BUCC: dev F1 at a threshold tuned on that dev set, an oracle; "
    "XTREME's Tatoeba has no dev split, so nothing ranks it)"
)
"""Why a retrieval target may have no selection metric (docs/selection.md says the same)."""


@dataclass
class SeedScores:
    """The re-run scores of one configuration (``--confirm``)."""

    trial: Trial
    seeds: list[int]
    scores: list[float]
    """The criterion's metric, one per seed."""
    test_scores: list[float]
    """zero_shot_avg, one per seed (reported, not used to select)."""

    @property
    def mean(self) -> float:
        """Mean criterion score over the seeds."""
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        """Sample standard deviation over the seeds (0 with a single seed)."""
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0


@dataclass
class TargetSelection:
    """The outcome for one target."""

    target: str
    criterion: str
    trials: list[Trial]
    """Every trial of the target, any status."""
    rankings: dict[str, list[Trial]]
    """Criterion -> completed trials that have its metric, best first."""
    winner: Trial
    """The selected trial (by the criterion, or by the seed mean with --confirm)."""
    config: TransferConfig
    """The winner's resolved config (from its config.yaml artifact)."""
    confirm: list[SeedScores] = field(default_factory=list)
    """With --confirm: the top K re-run, best mean first."""
    tie: bool = False
    """With --confirm: the winner's lead over the runner-up is below the seed spread."""
    path: Path | None = None
    """Where the best config was written."""

    @property
    def counts(self) -> dict[str, int]:
        """Trials per status."""
        return status_counts(self.trials)

    def top(self, criterion: str) -> Trial | None:
        """The first trial of ``criterion``'s ranking (None when no trial has its metric)."""
        ranking = self.rankings.get(criterion) or []
        return ranking[0] if ranking else None

    @property
    def disagree(self) -> bool | None:
        """Whether the two criteria pick different trials (None when one ranking is empty)."""
        first, second = (self.top(c) for c in CRITERIA)
        if first is None or second is None:
            return None
        return first.run_id != second.run_id

    @property
    def kendall_tau(self) -> float | None:
        """Rank agreement of the two criteria over the trials that have both metrics."""
        return kendall_tau(self.rankings.get("en_dev", []), self.rankings.get("target_dev", []))


@dataclass
class Selection:
    """The outcome for a whole search."""

    search: str
    criterion: str
    uri: str
    targets: list[TargetSelection]
    run_id: str | None = None
    """The summary run (xstilts.kind=selection)."""
    not_selected: dict[str, str] = field(default_factory=dict)
    """Targets that no completed trial's metric can rank -> why, in one line."""
    retrieval: dict[str, RetrievalTable] = field(default_factory=dict)
    """Retrieval targets -> their scores on the base and on each intermediate checkpoint."""

    @property
    def disagreements(self) -> int:
        """Targets whose en_dev and target_dev winners differ."""
        return sum(1 for t in self.targets if t.disagree)

    @property
    def comparable(self) -> int:
        """Targets where both criteria have a winner."""
        return sum(1 for t in self.targets if t.disagree is not None)


@dataclass
class SelectOptions:
    """Command-line options of ``xstilts select``."""

    search: str
    criterion: str = "en_dev"
    confirm: int = 0
    """Re-run the top K configurations with ``seeds`` and select on the mean (0: no re-runs)."""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    tracking_uri: str | None = None
    out: str = "best_configs"
    targets: list[str] = field(default_factory=list)
    """Only these targets (default: every target of the search)."""
    backend: str = "ray"
    """How --confirm re-runs: ray (a Ray Train job) or local (in this process)."""
    storage: str = "runs/confirm"
    """Where --confirm re-runs keep checkpoints and outputs."""


# -- deciding ------------------------------------------------------------------------------------------


def kendall_tau(first: Sequence[Trial], second: Sequence[Trial]) -> float | None:
    """Kendall's tau between two rankings over the trials in both (None under two common trials)."""
    position = {t.run_id: i for i, t in enumerate(second)}
    common = [t.run_id for t in first if t.run_id in position]
    n = len(common)
    if n < 2:
        return None
    concordant = sum(
        1 if position[common[i]] < position[common[j]] else -1 for i in range(n) for j in range(i + 1, n)
    )
    return concordant / (n * (n - 1) / 2)


def check_rankable(target: str, trials: list[Trial], criterion: str) -> dict[str, list[Trial]]:
    """Both rankings of one target; a SelectionError when the criterion has nothing to rank."""
    counts = status_counts(trials)
    if counts[COMPLETED] == 0:
        detail = ", ".join(f"{n} {s.replace('_', '-')}" for s, n in counts.items() if s != COMPLETED)
        raise SelectionError(f"target {target}: no completed trial to select from ({detail})")
    rankings = {c: rank(trials, c) for c in CRITERIA}
    if not rankings[criterion]:
        metric = CRITERIA[criterion]
        hint = f"; try --criterion {other(criterion)}" if rankings[other(criterion)] else ""
        raise NoSelectionMetric(
            f"target {target}: no completed trial has the metric {metric} (criterion {criterion}){hint}"
        )
    return rankings


def _is_retrieval(target: str) -> bool:
    from trainers.tasks import TASKS

    return target in TASKS and TASKS[target].is_retrieval


# -- the best-config files -----------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and ``os.replace``.

    A reader sees the old file or the new one, never half of one; the temp file is removed on error.
    """
    write_text_atomic(path, text, durable=True)


# -- --confirm: re-runs with extra seeds ---------------------------------------------------------


def rerun(config: TransferConfig, backend: str, storage: str) -> dict[str, Any]:
    """Run one configuration end to end and return its final metrics (tests replace this)."""
    from search.run import run_transfer

    return run_transfer(config, backend=backend, storage_path=storage)


def confirm_target(
    selected: TargetSelection, client: Any, options: SelectOptions, search: str
) -> list[SeedScores]:
    """Re-run the top K configurations of one target with every seed; best mean first."""
    metric = CRITERIA[options.criterion]
    results = []
    for position, trial in enumerate(selected.rankings[options.criterion][: options.confirm]):
        base = selected.config if position == 0 else load_config(client, trial)
        scores, tests = [], []
        for seed in options.seeds:
            output = Path(options.storage) / search / selected.target / f"{trial.trial_id}-seed{seed}"
            config = dataclasses.replace(base, seed=seed, output_dir=str(output))
            metrics = rerun(config, options.backend, options.storage)
            if metric not in metrics:
                raise SelectionError(f"re-run of {trial.describe()} with seed {seed} reported no {metric}")
            scores.append(float(metrics[metric]))
            tests.append(float(metrics.get(TEST_METRIC, math.nan)))
        results.append(SeedScores(trial, list(options.seeds), scores, tests))
    # Stable sort: equal means keep the single-run ranking's order.
    return sorted(results, key=lambda r: -r.mean)


def is_tie(confirmed: Sequence[SeedScores]) -> bool:
    """The best mean leads the runner-up by less than the larger of their seed standard deviations."""
    if len(confirmed) < 2:
        return False
    best, runner_up = confirmed[0], confirmed[1]
    return best.mean - runner_up.mean < max(best.std, runner_up.std)


# -- the whole selection --------------------------------------------------------------------------


def _check_options(options: SelectOptions) -> None:
    if options.criterion not in CRITERIA:
        raise SelectionError(f"unknown criterion {options.criterion!r}; use one of {', '.join(CRITERIA)}")
    if options.confirm < 0:
        raise SelectionError(f"--confirm must be >= 0, got {options.confirm}")
    if options.confirm and not options.seeds:
        raise SelectionError("--confirm needs at least one seed (--seeds 1,2,3)")
    if any(seed < 0 for seed in options.seeds):
        raise SelectionError(f"seeds must be non-negative, got {options.seeds}")
    if options.backend not in ("ray", "local"):
        raise SelectionError(f"--backend must be ray or local, got {options.backend!r}")


def plan_selection(options: SelectOptions) -> tuple[Selection, SearchResults]:
    """Read the search and choose every target's winner; writes nothing."""
    _check_options(options)
    found = open_search(options.search, options.tracking_uri)
    targets = found.targets
    if options.targets:
        unknown = [t for t in options.targets if t not in targets]
        if unknown:
            raise SelectionError(
                f"target {unknown[0]} is not in search {options.search} ({', '.join(targets) or 'no targets'})"
            )
        targets = list(options.targets)
    if not targets:
        raise SelectionError(f"search {options.search} has no trials yet")
    selected = []
    not_selected: dict[str, str] = {}
    tables = {t: table for t, table in retrieval_tables(found).items() if t in targets}
    for target in targets:
        mine = found.of(target)
        if target in tables and not mine:
            not_selected[target] = RETRIEVAL_EVALUATED
            continue
        try:
            rankings = check_rankable(target, mine, options.criterion)
        except NoSelectionMetric as error:
            # One target without a selection metric (Tatoeba) must not cost the others their selection.
            not_selected[target] = str(error) + (f"; {RETRIEVAL_NOTE}" if _is_retrieval(target) else "")
            continue
        winner = rankings[options.criterion][0]
        selected.append(
            TargetSelection(
                target, options.criterion, mine, rankings, winner, load_config(found.client, winner)
            )
        )
    if not selected and not any(table.rows for table in tables.values()):
        raise SelectionError(next(iter(not_selected.values())))
    selection = Selection(
        options.search, options.criterion, found.uri, selected, not_selected=not_selected, retrieval=tables
    )
    return selection, found


def select(options: SelectOptions) -> Selection:
    """Select, confirm (optionally), write the best configs, tag the winners, log the summary run."""
    selection, found = plan_selection(options)
    client = found.client
    for selected in selection.targets:
        if options.confirm:
            selected.confirm = confirm_target(selected, client, options, options.search)
            selected.tie = is_tie(selected.confirm)
            if selected.confirm[0].trial.run_id != selected.winner.run_id:
                selected.winner = selected.confirm[0].trial
                selected.config = load_config(client, selected.winner)
    # Render every file before writing any, so a failure leaves no target half-updated.
    texts = {s.target: config_text(s, options.search) for s in selection.targets}
    out = Path(options.out)
    for selected in selection.targets:
        selected.path = out / f"{selected.target}.yaml"
        write_atomic(selected.path, texts[selected.target])
    tag_winners(client, selection)
    selection.run_id = log_summary(client, found.experiment, found.parent, selection, options)
    return selection


def tag_winners(client: Any, selection: Selection) -> None:
    """Tag each winner ``best=true`` and clear the tag from the target's previous winner."""
    for selected in selection.targets:
        for trial in selected.trials:
            if trial.tags.get(BEST_TAG) == "true" and trial.run_id != selected.winner.run_id:
                for tag in (BEST_TAG, BEST_CRITERION_TAG, BEST_CONFIRM_TAG):
                    if tag in trial.tags:
                        client.delete_tag(trial.run_id, tag)
        client.set_tag(selected.winner.run_id, BEST_TAG, "true")
        client.set_tag(selected.winner.run_id, BEST_CRITERION_TAG, selection.criterion)
        if selected.confirm:
            best = selected.confirm[0]
            verdict = f"{best.mean:.2f} +/- {best.std:.2f} over seeds {','.join(map(str, best.seeds))}"
            client.set_tag(
                selected.winner.run_id, BEST_CONFIRM_TAG, verdict + (" (tie)" if selected.tie else "")
            )


def log_summary(
    client: Any, experiment: str, parent: str | None, selection: Selection, options: SelectOptions
) -> str:
    """Create the summary run (xstilts.kind=selection) with params, metrics and the ranking artifacts."""
    from mlflow.entities import Metric

    tags = {
        keys.SEARCH_TAG: selection.search,
        keys.KIND_TAG: SELECTION_KIND,
        keys.CRITERION_TAG: selection.criterion,
    }
    if parent is not None:
        tags["mlflow.parentRunId"] = parent  # nests the summary under the search in the UI
    run = client.create_run(experiment, run_name=f"select-{selection.criterion}", tags=tags)
    run_id = str(run.info.run_id)
    params = {
        "criterion": selection.criterion,
        "criterion_metric": CRITERIA[selection.criterion],
        "confirm": options.confirm,
        "seeds": ",".join(map(str, options.seeds)) if options.confirm else "",
        "targets": ",".join(t.target for t in selection.targets),
        **{f"winner.{t.target}": t.winner.trial_id for t in selection.targets},
    }
    tracking.log_params(client, run_id, params)
    client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in summary_metrics(selection).items()])
    artifacts = {"ranking.md": ranking_markdown(selection), "ranking.csv": ranking_csv(selection)}
    if options.confirm:
        artifacts["confirm.csv"] = confirm_csv(selection)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in artifacts.items():
            (Path(tmp) / name).write_text(text)
            client.log_artifact(run_id, str(Path(tmp) / name))
    for selected in selection.targets:
        if selected.path is not None:
            client.log_artifact(run_id, str(selected.path), artifact_path="best_configs")
    client.set_terminated(run_id, status="FINISHED")
    return run_id


__all__ = [
    "CRITERIA",
    "NoSelectionMetric",
    "SeedScores",
    "SelectOptions",
    "Selection",
    "SelectionError",
    "TargetSelection",
    "Trial",
    "format_selection",
    "is_tie",
    "kendall_tau",
    "load_trials",
    "open_store",
    "plan_selection",
    "rank",
    "rerun",
    "search_experiment",
    "select",
    "trial_status",
    "write_atomic",
]
