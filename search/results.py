"""Reading a finished (or running) search back: the one place that knows how a search is stored.

A search (``search/tuner.py``) leaves, in the MLflow experiment ``SearchLayout(search).experiment_name``,
one parent run (its targets and objective as params), one child run per trial (tags, params,
metrics, a ``config.yaml`` artifact) and one per retrieval evaluation (``xstilts.kind=retrieval``:
a retrieval target on one encoder, ``search/retrieval_eval.py``). This module opens the store and returns them as typed values;
``search/select.py`` decides on them, ``search/report.py`` renders them.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from search import tracking
from search.layout import SearchLayout
from trainers import keys
from trainers.config import ConfigError, TransferConfig
from trainers.errors import UserError


class ResultsError(UserError, ValueError):
    """A search that cannot be read, or a selection or report that cannot be made on it (one line)."""


CRITERIA: dict[str, str] = {"en_dev": keys.EN_DEV, "target_dev": keys.TARGET_DEV_AVG_NON_EN}
"""Criterion name -> the MLflow metric it ranks by (higher is better for both)."""
CRITERION_LABELS: dict[str, str] = {
    "en_dev": "en_dev: English dev score, strict zero-shot",
    "target_dev": f"target_dev: {keys.TARGET_DEV_AVG_NON_EN}, mean non-English target dev score, oracle",
}
TEST_METRIC = keys.ZERO_SHOT_AVG
"""The zero-shot test score shown beside every winner (never used to select)."""
CONFIG_ARTIFACT = "config.yaml"
"""A trial run's resolved TransferConfig."""
FINISHED_METRICS = (keys.FINISHED, "done")
"""Metrics a worker logs as 1.0 once the full budget ran (``done`` in older stores)."""
UNKNOWN_OBJECTIVE = "tuner.metric"
"""The objective's label when a search logged none and its space file can no longer be read."""


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


@dataclass(frozen=True)
class RetrievalEvaluation:
    """One evaluation of a retrieval target on one encoder (``search/retrieval_eval.py``), as read back."""

    run_id: str
    target: str
    checkpoint: str
    """The intermediate-checkpoint cache key, or ``keys.BASE_CHECKPOINT``."""
    label: str
    """The intermediate configuration in words."""
    status: str
    metrics: dict[str, float]

    @property
    def is_base(self) -> bool:
        """Whether this is the base encoder's evaluation."""
        return self.checkpoint == keys.BASE_CHECKPOINT

    @property
    def average(self) -> float | None:
        """``zero_shot_avg``, when finite."""
        value = self.metrics.get(keys.ZERO_SHOT_AVG)
        return value if value is not None and math.isfinite(value) else None

    @property
    def languages(self) -> dict[str, float]:
        """Per-language zero-shot scores."""
        return per_language(self.metrics)


@dataclass(frozen=True)
class SearchResults:
    """A search as read from its store: the client to read more with, its runs and its targets."""

    search: str
    uri: str
    client: Any
    """An MLflow client of the store."""
    experiment: str
    """The search's experiment id."""
    trials: list[Trial]
    """Every trial run (any status)."""
    parent: str | None
    """The search's parent run id (None in a store that has trials only)."""
    targets: list[str]
    """The search's targets: the parent run's first, then any other seen on trials."""
    retrieval: list[RetrievalEvaluation] = field(default_factory=list)
    """Every retrieval evaluation (any status)."""

    @property
    def layout(self) -> SearchLayout:
        """The search's names (its storage is not in MLflow: pass it where a path is needed)."""
        return SearchLayout(self.search)

    def of(self, target: str) -> list[Trial]:
        """The trials of ``target``."""
        return [t for t in self.trials if t.target == target]

    def objective(self) -> str:
        """The metric the search's studies optimised (the space's ``tuner.metric``)."""
        return search_objective(self.client, self.parent)


# -- the store --------------------------------------------------------------------------------------


def open_store(uri: str) -> Any:
    """An MLflow client for an existing store; never creates an empty one by mistake."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :].split("?")[0]
        if not os.path.isfile(path):
            raise ResultsError(f"no MLflow store at {path} (tracking URI {uri})")
    try:
        tracking.check_tracking_uri(uri)
    except tracking.TrackingError as error:
        raise ResultsError(str(error)) from None
    from mlflow.tracking import MlflowClient

    # One progress bar per downloaded config.yaml would bury the summaries select and report print.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(tracking_uri=uri)


def known_searches(client: Any) -> list[str]:
    """Names of the searches in the store (their experiments are named by ``SearchLayout``)."""
    names = [e.name for e in client.search_experiments(filter_string=SearchLayout.experiment_filter())]
    return sorted(s for s in (SearchLayout.search_of(name) for name in names) if s is not None)


def search_experiment(client: Any, search: str, uri: str) -> str:
    """The experiment id of ``search``, or a ResultsError listing the searches that exist."""
    experiment = client.get_experiment_by_name(SearchLayout(search).experiment_name)
    if experiment is None:
        known = known_searches(client)
        listing = ", ".join(known) if known else "none"
        raise ResultsError(f"unknown search {search!r} in {uri}; searches there: {listing}")
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


def _kind_query(kind: str, search: str) -> str:
    return f"tags.`{keys.KIND_TAG}` = '{kind}' and tags.`{keys.SEARCH_TAG}` = '{search}'"


# -- the runs ---------------------------------------------------------------------------------------


def trial_status(tags: dict[str, str], metrics: dict[str, float]) -> str:
    """The trial's status tag, except that "completed" needs evidence of the full budget.

    Stores written before trainers.worker reported ``finished`` tagged trials stopped early by ASHA as
    completed too (Tune's own ``done`` flag, True for every trial that ended, hid the worker's). A trial
    counts as completed only with a finished metric of 1 or the final zero-shot evaluation, which runs
    after the full target phase.
    """
    status = tags.get(keys.STATUS_TAG, keys.RUNNING)
    finished = any(metrics.get(name) == 1.0 for name in FINISHED_METRICS) or TEST_METRIC in metrics
    if status == keys.COMPLETED and not finished:
        return keys.EARLY_STOPPED
    return status


def status_counts(trials: Iterable[Trial]) -> dict[str, int]:
    """Trials per status, every status present (0 when none)."""
    counts = dict.fromkeys(keys.STATUSES, 0)
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return counts


def load_trials(client: Any, experiment: str, search: str) -> list[Trial]:
    """Every trial run of ``search`` (any status)."""
    return [
        Trial(
            run_id=str(run.info.run_id),
            trial_id=run.data.tags.get(keys.TRIAL_TAG, run.info.run_id),
            target=run.data.tags.get(keys.TARGET_TAG, "?"),
            status=trial_status(run.data.tags, run.data.metrics),
            start_time=int(run.info.start_time or 0),
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
        )
        for run in _all_runs(client, experiment, _kind_query(keys.KIND_TRIAL, search))
    ]


def load_retrieval(client: Any, experiment: str, search: str) -> list[RetrievalEvaluation]:
    """Every retrieval evaluation run of ``search`` (any status), the base first, then by label."""
    found = [
        RetrievalEvaluation(
            run_id=str(run.info.run_id),
            target=run.data.tags.get(keys.TARGET_TAG, "?"),
            checkpoint=run.data.tags.get(keys.CHECKPOINT_TAG, "?"),
            label=run.data.tags.get(keys.INTERMEDIATE_TAG, "?"),
            status=run.data.tags.get(keys.STATUS_TAG, keys.RUNNING),
            metrics=dict(run.data.metrics),
        )
        for run in _all_runs(client, experiment, _kind_query(keys.KIND_RETRIEVAL, search))
    ]
    return sorted(found, key=lambda e: (e.target, not e.is_base, e.label, e.run_id))


def parent_run_id(client: Any, experiment: str, search: str) -> str | None:
    """The search's parent run, if it exists."""
    runs = client.search_runs(
        [experiment], filter_string=_kind_query(keys.KIND_SEARCH, search), max_results=1
    )
    return str(runs[0].info.run_id) if runs else None


def latest_run_of_kind(client: Any, experiment: str, search: str, kind: str) -> str | None:
    """The search's most recently started run of ``kind`` (e.g. its latest selection run), if any."""
    runs = client.search_runs(
        [experiment],
        filter_string=_kind_query(kind, search),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return str(runs[0].info.run_id) if runs else None


def search_targets(client: Any, parent: str | None, trials: Iterable[Trial]) -> list[str]:
    """The targets of a search: the parent run's ``targets`` param first, then any seen on trials."""
    targets: list[str] = []
    if parent is not None:
        listed = client.get_run(parent).data.params.get(keys.TARGETS_PARAM, "")
        targets = [t for t in listed.split(",") if t]
    targets += sorted({t.target for t in trials} - set(targets))
    return targets


def search_objective(client: Any, parent: str | None) -> str:
    """The metric the search's studies optimised, as the tuner logged it on the parent run.

    A search logged before the tuner recorded it names only its space file: that file's ``tuner.metric``
    is read instead while it still loads, else the objective is only a label (``UNKNOWN_OBJECTIVE``).
    """
    if parent is None:
        return UNKNOWN_OBJECTIVE
    params = client.get_run(parent).data.params
    if keys.OBJECTIVE_PARAM in params:
        return str(params[keys.OBJECTIVE_PARAM])
    space = params.get(keys.SPACE_PARAM)
    if not space:
        return UNKNOWN_OBJECTIVE
    try:
        from search.space import load_space

        return load_space(space).tuner.metric
    except (OSError, ValueError):  # moved or edited since the search
        return UNKNOWN_OBJECTIVE


def load_config(client: Any, trial: Trial) -> TransferConfig:
    """The trial's resolved TransferConfig, from its config.yaml artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(trial.run_id, CONFIG_ARTIFACT, tmp)
        except Exception as error:  # MLflow raises several types for a missing artifact
            raise ResultsError(
                f"{trial.describe()} (run {trial.run_id}) has no {CONFIG_ARTIFACT} artifact: {error}"
            ) from None
        try:
            return TransferConfig.from_yaml(local)
        except ConfigError as error:
            raise ResultsError(
                f"run {trial.run_id}: {CONFIG_ARTIFACT} is not a valid config: {error}"
            ) from None


def open_search(search: str, tracking_uri: str | None) -> SearchResults:
    """Open the store and read search ``search``: its experiment, trials, parent run and targets."""
    uri = tracking_uri or tracking.default_tracking_uri()
    client = open_store(uri)
    experiment = search_experiment(client, search, uri)
    trials = load_trials(client, experiment, search)
    parent = parent_run_id(client, experiment, search)
    return SearchResults(
        search,
        uri,
        client,
        experiment,
        trials,
        parent,
        search_targets(client, parent, trials),
        load_retrieval(client, experiment, search),
    )


def languages_of(trial: Trial, prefix: str = keys.ZERO_SHOT) -> dict[str, float]:
    """Per-language scores ``<prefix>/<lang>`` of a trial (not the per-metric sub-keys)."""
    return per_language(trial.metrics, prefix)


def per_language(metrics: dict[str, float], prefix: str = keys.ZERO_SHOT) -> dict[str, float]:
    """Per-language scores ``<prefix>/<lang>`` among ``metrics``, English first (not the per-metric sub-keys)."""
    scores = {}
    for key, value in metrics.items():
        head, _, lang = key.partition("/")
        if head == prefix and lang and "/" not in lang and math.isfinite(value):
            scores[lang] = value
    return dict(sorted(scores.items(), key=lambda kv: (kv[0] != "en", kv[0])))


# -- orderings: select decides on them, report shows them -----------------------------------------------


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

    eligible = [t for t in trials if t.status == keys.COMPLETED and t.metric(metric) is not None]
    return sorted(eligible, key=key)


def _short(value: str) -> str:
    """Long floats from the sampler, shortened for display."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value and "e" not in value else f"{number:.3g}"


__all__ = [
    "CONFIG_ARTIFACT",
    "CRITERIA",
    "CRITERION_LABELS",
    "TEST_METRIC",
    "ResultsError",
    "RetrievalEvaluation",
    "SearchResults",
    "Trial",
    "known_searches",
    "languages_of",
    "load_config",
    "load_retrieval",
    "load_trials",
    "open_search",
    "open_store",
    "rank",
    "search_experiment",
    "search_objective",
    "search_targets",
    "status_counts",
    "trial_status",
]
