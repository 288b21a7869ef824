"""MLflow tracking: one parent run per search, one child run per trial, all written by the driver.

Every metric a worker reports reaches the driver through Tune; ``TrialTracker`` (a Tune callback)
writes it to MLflow from that single process, so a SQLite store never sees concurrent writers.
Runs are found again by tag (``xstilts.search``, ``xstilts.trial_id``), so ``--resume`` continues the
same runs instead of duplicating them.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ray.tune import Callback

# Defined with the other import-free checks (the CLI runs them before Ray loads); used here as tracking.*.
from search.checks import TrackingError, check_tracking_uri  # noqa: F401
from trainers import keys
from trainers.config import flatten
from trainers.keys import (  # the tags' names live with every other name select and report read back
    FINISHED,
    KIND_TAG,
    SEARCH_TAG,
    STALLED_TAG,
    STATUS_TAG,
    TARGET_TAG,
    TERMINAL,
    TRIAL_TAG,
)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""The experiment tag MLflow 3's UI reads to pick an experiment's view (its ``ExperimentKind`` values)."""
MODEL_TRAINING = "custom_model_development"
"""Model training, as opposed to GenAI development; the UI's landing view follows the link (``UI_WORKFLOW``)."""
UI_WORKFLOW = "machine_learning"
"""MLflow 3's UI opens every experiment in its GenAI view (traces) unless its link carries
``?workflowType=machine_learning`` (or the browser last chose "Model training"): the kind tag alone does
not switch it (checked in MLflow 3.17's UI)."""
SEARCHED_PREFIX = "_search."
"""Prefix of a trial's searched parameters: the UI lists params in code-point order, where ``_`` comes
before every lowercase key of the resolved config, so the searched ones head Compare and the column list."""


def default_tracking_uri(root: str | Path = "mlruns") -> str:
    """The embedded default: a SQLite database under ``root`` (absolute, since Ray changes directories)."""
    path = Path(root).expanduser().resolve()
    return f"sqlite:///{path / 'mlflow.db'}"


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """MLflow's refusals (no credentials, a store it cannot open or migrate) as one ``TrackingError`` line."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        raise TrackingError(f"tracking store {uri}: {str(error).strip().splitlines()[0]}") from None


def experiment_id(uri: str, name: str, artifact_root: str | None = None) -> str:
    """The MLflow experiment ``name`` of kind model training (created if missing, artifacts beside a SQLite store by default)."""
    client = _client(uri)
    with store_errors(uri):  # the search's first write: a store that refuses it is a one-line error
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            if EXPERIMENT_KIND_TAG not in experiment.tags:
                # Made before xstilts set its kind: MLflow 3's UI would guess one (GenAI: the Traces view).
                # A kind already set (by the UI's own switch) is the user's choice and stays.
                client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
            return str(experiment.experiment_id)
        if artifact_root is None and uri.startswith("sqlite:///"):
            artifact_root = (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()
        tags = {EXPERIMENT_KIND_TAG: MODEL_TRAINING}
        return str(client.create_experiment(name, artifact_location=artifact_root, tags=tags))


def existing_experiment(uri: str, name: str) -> str | None:
    """The id of experiment ``name`` if the store holds it; creates nothing, and None if the store cannot answer."""
    from mlflow.exceptions import MlflowException

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return None  # opening a SQLite store that is not there would create it
    try:
        found = _client(uri).get_experiment_by_name(name)
    except MlflowException:
        return None
    return None if found is None else str(found.experiment_id)


def experiment_url(ui: str, experiment: str) -> str:
    """The link that opens ``experiment`` in the MLflow UI at ``ui`` on its runs table (the model-training view)."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment}?workflowType={UI_WORKFLOW}"


def trial_params(resolved: dict[str, Any], searched: dict[str, Any]) -> dict[str, Any]:
    """A trial's MLflow params: its flattened resolved config, and its searched point under ``SEARCHED_PREFIX``."""
    return {**flatten(resolved), **{f"{SEARCHED_PREFIX}{key}": value for key, value in searched.items()}}


def find_run(uri: str, experiment: str, tags: dict[str, str]) -> str | None:
    """The id of the run carrying all ``tags``, if one exists."""
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    runs = _client(uri).search_runs([experiment], filter_string=query, max_results=1)
    return str(runs[0].info.run_id) if runs else None


def parent_run(uri: str, experiment: str, search: str, params: dict[str, Any]) -> str:
    """The search's parent run: found by tag, or created with ``params``."""
    client = _client(uri)
    found = find_run(uri, experiment, {SEARCH_TAG: search, KIND_TAG: keys.KIND_SEARCH})
    if found is not None:
        return found
    run = client.create_run(
        experiment, run_name=search, tags={SEARCH_TAG: search, KIND_TAG: keys.KIND_SEARCH}
    )
    log_params(client, run.info.run_id, params)
    return str(run.info.run_id)


@contextlib.contextmanager
def search_run(uri: str, experiment: str, search: str, params: dict[str, Any]) -> Iterator[str]:
    """The parent run, RUNNING while the body runs (re-opened on ``--resume``), then FINISHED or FAILED."""
    run_id = parent_run(uri, experiment, search, params)
    client = _client(uri)
    if client.get_run(run_id).info.status != "RUNNING":
        client.update_run(run_id, status="RUNNING")
    try:
        yield run_id
    except BaseException:
        # Ctrl-C too: MLflow's own start_run context ends a run FAILED on any exception.
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")


def log_params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    """Log params in batches (MLflow caps a batch at 100), values truncated to MLflow's limit."""
    from mlflow.entities import Param

    items = [Param(str(k), str(v)[:6000]) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def log_config(client: Any, run_id: str, config: dict[str, Any]) -> None:
    """Log a resolved TransferConfig dict as the run's ``config.yaml`` artifact (what select reads back)."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        client.log_artifact(run_id, str(path))


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a Tune result, without Tune's own bookkeeping."""
    skip = {
        "time_this_iter_s",
        "time_total_s",
        "timestamp",
        "training_iteration",
        "pid",
        "time_since_restore",
    }
    out = {}
    for key, value in result.items():
        if key in skip or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class TrialTracker(Callback):
    """A Tune callback writing each trial to its MLflow child run (params, metrics, status, config)."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        parent_id: str,
        search: str,
        target: str,
        trial_params: Callable[[dict[str, Any], str], tuple[dict[str, Any], dict[str, Any]]],
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.parent_id = parent_id
        self.search = search
        self.target = target
        # Maps a trial's Tune config and id to (flat MLflow params, resolved TransferConfig dict).
        self.trial_params = trial_params
        self.run_ids: dict[str, str] = {}
        self.closed: set[str] = set()  # runs that reached a terminal status before this driver
        self._session_runs: set[str] = set()  # runs this driver process has logged to since its setup
        self._client: Any = None

    @property
    def client(self) -> Any:
        """A lazily made MLflow client (not pickled with the callback's state)."""
        if self._client is None:
            self._client = _client(self.uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_session_runs": set()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_session_runs": set(), **state})  # a search pickled before the attribute

    def run_id(self, trial: Any) -> str:
        """The trial's child run: found by its trial id (after ``--resume``), or created."""
        if trial.trial_id in self.run_ids:
            return self.run_ids[trial.trial_id]
        tags = {SEARCH_TAG: self.search, TRIAL_TAG: trial.trial_id}
        run_id = find_run(self.uri, self.experiment, tags)
        found = self.client.get_run(run_id).data if run_id is not None else None
        if found is not None and found.tags.get(STATUS_TAG) in TERMINAL:
            # Finished before an interruption; Tune may re-run it after --resume: log nothing twice.
            self.closed.add(str(run_id))
        if run_id is None:
            run = self.client.create_run(
                self.experiment,
                run_name=f"{self.target}-{trial.trial_id}",
                tags={
                    **tags,
                    TARGET_TAG: self.target,
                    KIND_TAG: keys.KIND_TRIAL,
                    STATUS_TAG: keys.RUNNING,
                    "mlflow.parentRunId": self.parent_id,
                },
            )
            run_id = run.info.run_id
        if found is None or not found.params:
            # New, or created just before the server or the driver went away: a replay describes it.
            params, config = self.trial_params(dict(trial.config), trial.trial_id)
            log_params(self.client, run_id, params)
            log_config(self.client, run_id, config)
        self.run_ids[trial.trial_id] = str(run_id)
        self._session_runs.add(str(run_id))
        return str(run_id)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Open (or re-open) the child run."""
        run_id = self.run_id(trial)
        if run_id not in self.closed:
            self.client.set_tag(run_id, STATUS_TAG, keys.RUNNING)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """Log the reported metrics at step ``target_step``."""
        from mlflow.entities import Metric

        run_id = self.run_id(trial)
        if run_id in self.closed:
            return
        step = int(result.get(keys.TARGET_STEP, 0) or 0)
        stamp = int(result.get("timestamp", 0) * 1000)
        metrics = [Metric(k, v, stamp, step) for k, v in numeric_metrics(result).items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Completed the full budget, or stopped early by the scheduler."""
        done = (trial.last_result or {}).get(FINISHED) == 1.0
        self._finish(trial, keys.COMPLETED if done else keys.EARLY_STOPPED, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """The trial failed (after its retries)."""
        self._finish(trial, keys.FAILED, "FAILED")

    def new_session(self) -> None:
        """From now on, count only the runs this driver logs to as its own (``forget_lost`` keeps those)."""
        self._session_runs.clear()

    def forget_lost(self, known: set[str]) -> list[str]:
        """Delete the runs of trials a killed driver started but Tune's last snapshot never held.

        Tune snapshots its experiment every few seconds; a trial started after the last snapshot before
        the driver died is unknown to ``--resume`` (and to the searcher's restored state), which starts a new
        trial in its place. The old trial's run, finished or not, would stand beside the new one's as a trial
        the study never had: it is deleted (MLflow's soft delete: restorable,
        hidden from the UI, ``select`` and ``report``). ``known`` holds the ids of the trials Tune restored;
        runs this driver has logged to since its setup (``new_session``) are kept whatever ``known`` says. Returns the deleted trials' ids.
        """
        query = (
            f"tags.`{SEARCH_TAG}` = '{self.search}' and tags.`{TARGET_TAG}` = '{self.target}' "
            f"and tags.`{KIND_TAG}` = '{keys.KIND_TRIAL}'"
        )
        lost = [
            run
            for run in self.client.search_runs([self.experiment], filter_string=query, max_results=10_000)
            # Not a trial of Tune's, nor one this driver has logged to: a trial only the killed driver had.
            if run.data.tags.get(TRIAL_TAG) not in known and run.info.run_id not in self._session_runs
        ]
        for run in lost:
            self.client.delete_run(run.info.run_id)
            self.run_ids.pop(run.data.tags.get(TRIAL_TAG, ""), None)
        ids = sorted(run.data.tags.get(TRIAL_TAG, "?") for run in lost)
        if ids:
            print(
                f"{self.target}: {len(ids)} trial(s) the interrupted driver had started after Tune's last "
                f"snapshot ({', '.join(ids)}) are replaced by new ones; their MLflow runs are deleted (restorable)",
                flush=True,
            )
        return ids

    def flag_stalled(self, trial: Any, silent_s: float) -> None:
        """Tag the trial's run: it has reported nothing for ``silent_s`` (``StallWatch``'s ``on_stall``)."""
        run_id = self.run_id(trial)
        if run_id not in self.closed:
            self.client.set_tag(run_id, STALLED_TAG, f"no report for {silent_s:.0f} s")

    def clear_stalled(self, trial: Any) -> None:
        """Remove the stall tag once the trial reports again."""
        run_id = self.run_id(trial)
        if run_id not in self.closed:
            self.client.delete_tag(run_id, STALLED_TAG)

    def _finish(self, trial: Any, status: str, mlflow_status: str) -> None:
        run_id = self.run_id(trial)
        if run_id in self.closed:
            return
        if status != keys.FAILED and STALLED_TAG in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, STALLED_TAG)  # it moved on; on a failure the tag is evidence
        self.client.set_tag(run_id, STATUS_TAG, status)
        self.client.set_terminated(run_id, status=mlflow_status)
