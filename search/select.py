"""``xstilts select``: pick the best transfer configuration of every target of a finished search.

A search (``search/tuner.py``) leaves one MLflow child run per trial. For each target this module
ranks the *completed* trials (early-stopped and failed ones never ran their full budget, so their
scores are not comparable) by an explicit criterion:

- ``en_dev``: the English dev score, strict zero-shot selection (the default);
- ``target_dev``: ``target_dev_avg_non_en``, the mean over the target-language dev sets, an oracle
  that uses target-language labels.

Retrieval targets (BUCC, Tatoeba) have no English dev set, so ``en_dev`` cannot rank them; BUCC's
``target_dev`` is its dev F1 at a threshold tuned on that dev set (an oracle), and XTREME's Tatoeba has
no dev split at all. A target no metric can rank is reported as not selected, and the other targets
are selected as usual.

Both rankings' winners are always shown, with how often they disagree (Keung et al. 2020, "Don't
use English dev"). The winner's resolved TransferConfig (its ``config.yaml`` artifact) is written
atomically to ``<out>/<target>.yaml``, which ``xstilts run --config`` runs as is; the winning run is
tagged ``best=true``; a summary run (``xstilts.kind=selection``) holds the ranking and metrics.
``--confirm K`` re-runs the top K with fresh seeds and selects on the mean.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import statistics
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search import tracking
from trainers._atomic import write_text_atomic
from trainers.config import ConfigError, TransferConfig
from trainers.errors import UserError

EXPERIMENT_PREFIX = "xstilts"
"""Experiments are ``xstilts-<search>`` (search.tuner.EXPERIMENT_PREFIX; not imported, it loads torch)."""

CRITERIA: dict[str, str] = {"en_dev": "en_dev", "target_dev": "target_dev_avg_non_en"}
"""Criterion name -> the MLflow metric it ranks by (higher is better for both)."""
CRITERION_LABELS: dict[str, str] = {
    "en_dev": "en_dev: English dev score, strict zero-shot",
    "target_dev": "target_dev: target_dev_avg_non_en, mean non-English target dev score, oracle",
}
TEST_METRIC = "zero_shot_avg"
"""The zero-shot test score shown beside every winner (never used to select)."""
SELECTION_KIND = "selection"
CONFIG_ARTIFACT = "config.yaml"
BEST_TAG = "best"
BEST_CRITERION_TAG = "best.criterion"
COMPLETED = "completed"
STATUSES = ("completed", "early_stopped", "failed", "running")


class SelectionError(UserError, ValueError):
    """A selection that cannot be made (one line: what is wrong and what exists)."""


class NoSelectionMetric(SelectionError):
    """A target whose completed trials lack the criterion's metric: reported, the others still selected."""


RETRIEVAL_NOTE = (
    "a retrieval target has no English dev set, so no en_dev; its target_dev is the language pairs' dev "
    "score where a dev split exists (BUCC: dev F1 at a threshold tuned on that dev set, an oracle; "
    "XTREME's Tatoeba has no dev split, so nothing ranks it)"
)
"""Why a retrieval target may have no selection metric (docs/selection.md says the same)."""


@dataclass(frozen=True)
class Trial:
    """One trial's child run, as read back from MLflow."""

    run_id: str
    trial_id: str
    target: str
    status: str
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def intermediate_task(self) -> str:
        """The searched intermediate task ("none", "mnli", "mnli+qqp"), or the one the config fixed."""
        if f"{tracking.SEARCHED_PREFIX}intermediate_task" in self.params:
            return self.params[f"{tracking.SEARCHED_PREFIX}intermediate_task"]
        tasks = self.params.get("intermediate.tasks")
        return tasks.replace(",", "+") if tasks and tasks != "None" else "none"

    @property
    def freeze_depth(self) -> int | None:
        """The target phase's freeze depth, when logged."""
        value = self.params.get("target.freeze_depth")
        return int(value) if value not in (None, "None") else None

    def metric(self, name: str) -> float | None:
        """A finite metric value, or None."""
        value = self.metrics.get(name)
        return value if value is not None and math.isfinite(value) else None

    def describe(self) -> str:
        """A short label: trial id and the searched values."""
        prefix = tracking.SEARCHED_PREFIX
        searched = {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}
        searched.pop("target.task", None)
        # The intermediate task first: it is what the search is mostly about.
        searched = dict(sorted(searched.items(), key=lambda kv: kv[0] != "intermediate_task"))
        values = ", ".join(f"{k}={_short(v)}" for k, v in searched.items())
        return f"trial {self.trial_id} ({values})" if values else f"trial {self.trial_id}"


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


# -- reading a search back from MLflow ---------------------------------------------------------------


def open_store(uri: str) -> Any:
    """An MLflow client for an existing store; never creates an empty one by mistake."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :].split("?")[0])
        if not path.is_file():
            raise SelectionError(f"no MLflow store at {path} (tracking URI {uri})")
    try:
        tracking.check_tracking_uri(uri)
    except tracking.TrackingError as error:
        raise SelectionError(str(error)) from None
    from mlflow.tracking import MlflowClient

    # One progress bar per downloaded config.yaml would bury the summary this module prints.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(tracking_uri=uri)


def known_searches(client: Any) -> list[str]:
    """Names of the searches in the store (experiments ``xstilts-<name>``)."""
    prefix = f"{EXPERIMENT_PREFIX}-"
    names = [e.name for e in client.search_experiments(filter_string=f"name LIKE '{prefix}%'")]
    return sorted(name[len(prefix) :] for name in names)


def search_experiment(client: Any, search: str, uri: str) -> str:
    """The experiment id of ``search``, or a SelectionError listing the searches that exist."""
    experiment = client.get_experiment_by_name(f"{EXPERIMENT_PREFIX}-{search}")
    if experiment is None:
        known = known_searches(client)
        listing = ", ".join(known) if known else "none"
        raise SelectionError(f"unknown search {search!r} in {uri}; searches there: {listing}")
    return str(experiment.experiment_id)


def _all_runs(client: Any, experiment: str, query: str) -> list[Any]:
    """Every run matching ``query`` (MLflow pages its results)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment], filter_string=query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


FINISHED_METRICS = ("finished", "done")
"""Metrics a worker logs as 1.0 once the full budget ran (trainers.worker.FINISHED; ``done`` in older stores)."""


def trial_status(tags: dict[str, str], metrics: dict[str, float]) -> str:
    """The trial's status tag, except that "completed" needs evidence of the full budget.

    Stores written before trainers.worker reported ``finished`` tagged trials stopped early by ASHA as
    completed too (Tune's own ``done`` flag, True for every trial that ended, hid the worker's). A trial
    counts as completed only with a finished metric of 1 or the final zero-shot evaluation, which runs
    after the full target phase.
    """
    status = tags.get(tracking.STATUS_TAG, "running")
    finished = any(metrics.get(name) == 1.0 for name in FINISHED_METRICS) or TEST_METRIC in metrics
    if status == COMPLETED and not finished:
        return "early_stopped"
    return status


def load_trials(client: Any, experiment: str, search: str) -> list[Trial]:
    """Every trial run of ``search`` (any status)."""
    query = f"tags.`{tracking.KIND_TAG}` = 'trial' and tags.`{tracking.SEARCH_TAG}` = '{search}'"
    return [
        Trial(
            run_id=str(run.info.run_id),
            trial_id=run.data.tags.get(tracking.TRIAL_TAG, run.info.run_id),
            target=run.data.tags.get(tracking.TARGET_TAG, "?"),
            status=trial_status(run.data.tags, run.data.metrics),
            start_time=int(run.info.start_time or 0),
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
        )
        for run in _all_runs(client, experiment, query)
    ]


def parent_run_id(client: Any, experiment: str, search: str) -> str | None:
    """The search's parent run, if it exists."""
    query = f"tags.`{tracking.KIND_TAG}` = 'search' and tags.`{tracking.SEARCH_TAG}` = '{search}'"
    runs = client.search_runs([experiment], filter_string=query, max_results=1)
    return str(runs[0].info.run_id) if runs else None


def search_targets(client: Any, parent: str | None, trials: Iterable[Trial]) -> list[str]:
    """The targets of a search: the parent run's ``targets`` param first, then any seen on trials."""
    targets: list[str] = []
    if parent is not None:
        listed = client.get_run(parent).data.params.get("targets", "")
        targets = [t for t in listed.split(",") if t]
    targets += sorted({t.target for t in trials} - set(targets))
    return targets


# -- ranking ------------------------------------------------------------------------------------------


def other(criterion: str) -> str:
    """The criterion that is not ``criterion`` (used as the tie-breaker and for the comparison)."""
    return next(c for c in CRITERIA if c != criterion)


def rank(trials: Iterable[Trial], criterion: str) -> list[Trial]:
    """Completed trials that have the criterion's metric, best first.

    Ties are broken deterministically: the other criterion's metric (higher first, missing last),
    then the earlier start time, then the run id.
    """
    metric, secondary = CRITERIA[criterion], CRITERIA[other(criterion)]

    def key(trial: Trial) -> tuple[float, float, int, str]:
        value = trial.metric(secondary)
        return (
            -(trial.metric(metric) or 0.0),
            -value if value is not None else math.inf,
            trial.start_time,
            trial.run_id,
        )

    eligible = [t for t in trials if t.status == COMPLETED and t.metric(metric) is not None]
    return sorted(eligible, key=key)


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


def status_counts(trials: Iterable[Trial]) -> dict[str, int]:
    """Trials per status, every status present (0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return counts


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


# -- configs and files ----------------------------------------------------------------------------


def load_config(client: Any, trial: Trial) -> TransferConfig:
    """The trial's resolved TransferConfig, from its config.yaml artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(trial.run_id, CONFIG_ARTIFACT, tmp)
        except Exception as error:  # MLflow raises several types for a missing artifact
            raise SelectionError(
                f"{trial.describe()} (run {trial.run_id}) has no {CONFIG_ARTIFACT} artifact: {error}"
            ) from None
        try:
            return TransferConfig.from_yaml(local)
        except ConfigError as error:
            raise SelectionError(
                f"run {trial.run_id}: {CONFIG_ARTIFACT} is not a valid config: {error}"
            ) from None


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


def open_search(search: str, tracking_uri: str | None) -> tuple[Any, Any, list[Trial], str | None, list[str]]:
    """The store's client, the search's experiment, its trials, parent run id and targets."""
    uri = tracking_uri or tracking.default_tracking_uri()
    client = open_store(uri)
    experiment = search_experiment(client, search, uri)
    trials = load_trials(client, experiment, search)
    parent = parent_run_id(client, experiment, search)
    return client, experiment, trials, parent, search_targets(client, parent, trials)


def plan_selection(options: SelectOptions) -> tuple[Selection, Any, str, str | None]:
    """Read the search and choose every target's winner; writes nothing."""
    _check_options(options)
    client, experiment, trials, parent, targets = open_search(options.search, options.tracking_uri)
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
    for target in targets:
        mine = [t for t in trials if t.target == target]
        try:
            rankings = check_rankable(target, mine, options.criterion)
        except NoSelectionMetric as error:
            # One target without a selection metric (Tatoeba) must not cost the others their selection.
            not_selected[target] = str(error) + (f"; {RETRIEVAL_NOTE}" if _is_retrieval(target) else "")
            continue
        winner = rankings[options.criterion][0]
        selected.append(
            TargetSelection(target, options.criterion, mine, rankings, winner, load_config(client, winner))
        )
    if not selected:
        raise SelectionError(next(iter(not_selected.values())))
    uri = options.tracking_uri or tracking.default_tracking_uri()
    selection = Selection(options.search, options.criterion, uri, selected, not_selected=not_selected)
    return selection, client, experiment, parent


def select(options: SelectOptions) -> Selection:
    """Select, confirm (optionally), write the best configs, tag the winners, log the summary run."""
    selection, client, experiment, parent = plan_selection(options)
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
    selection.run_id = log_summary(client, experiment, parent, selection, options)
    return selection


def tag_winners(client: Any, selection: Selection) -> None:
    """Tag each winner ``best=true`` and clear the tag from the target's previous winner."""
    for selected in selection.targets:
        for trial in selected.trials:
            if trial.tags.get(BEST_TAG) == "true" and trial.run_id != selected.winner.run_id:
                for tag in (BEST_TAG, BEST_CRITERION_TAG, "best.confirm"):
                    if tag in trial.tags:
                        client.delete_tag(trial.run_id, tag)
        client.set_tag(selected.winner.run_id, BEST_TAG, "true")
        client.set_tag(selected.winner.run_id, BEST_CRITERION_TAG, selection.criterion)
        if selected.confirm:
            best = selected.confirm[0]
            verdict = f"{best.mean:.2f} +/- {best.std:.2f} over seeds {','.join(map(str, best.seeds))}"
            client.set_tag(
                selected.winner.run_id, "best.confirm", verdict + (" (tie)" if selected.tie else "")
            )


# -- output -------------------------------------------------------------------------------------


RANKING_COLUMNS = (
    "target",
    "criterion",
    "rank",
    "trial_id",
    "run_id",
    "intermediate_task",
    "freeze_depth",
    "en_dev",
    "target_dev_avg_non_en",
    "zero_shot_avg",
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
                "| rank | trial | intermediate | freeze | en_dev | target_dev_avg_non_en | zero_shot_avg | selected |"
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
            f"MLflow: selection run {selection.run_id} in experiment {EXPERIMENT_PREFIX}-{selection.search} "
            f"at {selection.uri}; winners tagged {BEST_TAG}=true"
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
        metrics[f"{prefix}/completed"] = float(selected.counts[COMPLETED])
        if selected.disagree is not None:
            metrics[f"{prefix}/disagree"] = float(selected.disagree)
        if selected.kendall_tau is not None:
            metrics[f"{prefix}/kendall_tau"] = selected.kendall_tau
        if selected.confirm:
            metrics[f"{prefix}/confirm_mean"] = selected.confirm[0].mean
            metrics[f"{prefix}/confirm_std"] = selected.confirm[0].std
            metrics[f"{prefix}/confirm_tie"] = float(selected.tie)
    return metrics


def log_summary(
    client: Any, experiment: str, parent: str | None, selection: Selection, options: SelectOptions
) -> str:
    """Create the summary run (xstilts.kind=selection) with params, metrics and the ranking artifacts."""
    from mlflow.entities import Metric

    tags = {
        tracking.SEARCH_TAG: selection.search,
        tracking.KIND_TAG: SELECTION_KIND,
        "xstilts.criterion": selection.criterion,
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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _mean(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return _fmt(statistics.fmean(finite)) if finite else "n/a"


def _short(value: str) -> str:
    """Long floats from the sampler, shortened for display."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value and "e" not in value else f"{number:.3g}"


__all__ = [
    "CRITERIA",
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
    "write_atomic",
]
