"""A fake-but-realistic search written to MLflow through search.tracking, for selection/report/UI tests.

Every run is logged by the real ``tracking.parent_run`` and ``tracking.TrialTracker`` (driven with
stand-in Tune trials), so the tags, params, metrics and ``config.yaml`` artifacts have exactly the
layout a real search leaves, and stay in sync with it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import tracking
from search.layout import SearchLayout
from trainers import keys
from trainers.config import TransferConfig

LANGS = ("en", "de", "es")


@dataclass
class FakeTrial:
    """One trial to log: its searched point, status and final scores."""

    trial_id: str
    target: str
    intermediate: str = "none"
    """none, a task, or a mixture a+b."""
    freeze_depth: int = 0
    learning_rate: float = 1e-3
    en_dev: float | None = 50.0
    target_dev: dict[str, float] = field(default_factory=dict)
    """Per-language target dev scores (averages are computed as the worker does)."""
    zero_shot: dict[str, float] = field(default_factory=dict)
    status: str = "completed"
    """completed | early_stopped | failed | running."""
    cost_gpu_s: float | None = None
    """Device-seconds the trial held (``cost/gpu_s`` on its final report); None: unpriced."""


@dataclass
class _TuneTrial:
    """The attributes of a Tune ``Trial`` that TrialTracker reads."""

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)


def point(trial: FakeTrial) -> dict[str, Any]:
    """The flat Tune config of the trial, as the define-by-run space returns it."""
    config: dict[str, Any] = {"intermediate_task": trial.intermediate}
    if trial.intermediate != "none":
        config["intermediate.learning_rate"] = 1e-3
    config["target.freeze_depth"] = trial.freeze_depth
    config["target.learning_rate"] = trial.learning_rate
    config["target.task"] = trial.target
    return config


def resolved_config(config: dict[str, Any], output_dir: str = "runs/fake/trials/x") -> TransferConfig:
    """A real TransferConfig for a flat point (small miniature settings)."""
    data: dict[str, Any] = {
        "target": {
            "task": config["target.task"],
            "learning_rate": config["target.learning_rate"],
            "freeze_depth": config["target.freeze_depth"],
            "max_steps": 40,
            "eval_every": 10,
        },
        "model": {"name_or_path": "tiny", "max_seq_length": 64, "doc_stride": 32},
        "data": {"source": "miniature", "max_train_examples": 64, "max_eval_examples": 24},
        "output_dir": output_dir,
    }
    if config["intermediate_task"] != "none":
        data["intermediate"] = {
            "tasks": config["intermediate_task"].split("+"),
            "learning_rate": config["intermediate.learning_rate"],
            "max_steps": 30,
        }
    return TransferConfig.from_dict(data)


def params_of(config: dict[str, Any], trial_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What search.tuner's ``params_of`` returns: the trial's MLflow params, and the resolved dict."""
    resolved = resolved_config(config, f"runs/fake/trials/{trial_id}").to_dict()
    return tracking.trial_params(resolved, config), resolved


def _averages(prefix: str, scores: dict[str, float]) -> dict[str, float]:
    """``<prefix>/<lang>``, ``<prefix>_avg`` and ``<prefix>_avg_non_en``, as trainers.zero_shot_eval logs."""
    if not scores:
        return {}
    out = {f"{prefix}/{lang}": value for lang, value in scores.items()}
    out.update({f"{prefix}/{lang}/accuracy": value for lang, value in scores.items()})
    out[f"{prefix}_avg"] = sum(scores.values()) / len(scores)
    foreign = [value for lang, value in scores.items() if lang != "en"]
    if foreign:
        out[f"{prefix}_avg_non_en"] = sum(foreign) / len(foreign)
    return out


def _results(trial: FakeTrial) -> list[dict[str, Any]]:
    """The Tune results the trial reports: a mid-way dev evaluation, then (if it finishes) the final one."""
    now = time.time()
    first: dict[str, Any] = {"target_step": 10, "timestamp": now, "done": False, "target/loss": 0.9}
    if trial.en_dev is not None:
        first["en_dev"] = trial.en_dev - 5.0
    if trial.status in ("early_stopped", "failed", "running"):
        return [first]
    final: dict[str, Any] = {
        "target_step": 40,
        "timestamp": now + 1,
        "finished": 1.0,
        "intermediate_reused": 0.0,
        "target/trainable_params": 360322.0,
        "time/target_s": 4.8,
        "time/eval_s": 0.2,
        **_averages("target_dev", trial.target_dev),
        **_averages("zero_shot", trial.zero_shot),
    }
    if trial.en_dev is not None:
        final["en_dev"] = trial.en_dev
    if trial.cost_gpu_s is not None:
        final[keys.COST_GPU_S] = trial.cost_gpu_s
    return [first, final]


def log_search(
    uri: str, search: str, trials: list[FakeTrial], targets: list[str] | None = None
) -> dict[str, str]:
    """Log ``trials`` as search ``search``; return trial id -> MLflow run id."""
    targets = targets or list(dict.fromkeys(t.target for t in trials))
    experiment = tracking.experiment_id(uri, SearchLayout(search).experiment_name)
    params = {
        keys.SPACE_PARAM: "spaces/fake.yaml",
        keys.TARGETS_PARAM: ",".join(targets),
        keys.OBJECTIVE_PARAM: keys.EN_DEV,
    }
    parent = tracking.parent_run(uri, experiment, search, params)
    trackers = {
        target: tracking.TrialTracker(uri, experiment, parent, search, target, params_of)
        for target in targets
    }
    for trial in trials:
        tracker = trackers[trial.target]
        tune_trial = _TuneTrial(trial.trial_id, point(trial))
        tracker.on_trial_start(0, [], tune_trial)
        for result in _results(trial):
            tracker.on_trial_result(0, [], tune_trial, result)
            tune_trial.last_result = result
        if trial.status == "failed":
            tracker.on_trial_error(0, [], tune_trial)
        elif trial.status != "running":
            tracker.on_trial_complete(0, [], tune_trial)
        time.sleep(0.002)  # distinct start times, as real trials have
    return {tid: rid for tracker in trackers.values() for tid, rid in tracker.run_ids.items()}


def scores(base: float, spread: float = 2.0) -> dict[str, float]:
    """Per-language scores around ``base`` (en highest, as in real transfer)."""
    return {"en": base + spread, "de": base, "es": base - spread}


def demo_trials(target: str = "pawsx") -> list[FakeTrial]:
    """A small search on one target where en_dev and target_dev pick different winners.

    en_dev picks ``<target>-1`` (mnli), target_dev picks ``<target>-2`` (qqp); ``-3`` scores best but
    was stopped early (its partial en_dev, 75, beats every completed trial); ``-4`` failed.
    """
    trial = FakeTrial
    return [
        trial(f"{target}-0", target, "none", 0, en_dev=60.0, target_dev=scores(50), zero_shot=scores(48)),
        trial(f"{target}-1", target, "mnli", 0, en_dev=66.0, target_dev=scores(52), zero_shot=scores(51)),
        trial(f"{target}-2", target, "qqp", 1, en_dev=63.0, target_dev=scores(57), zero_shot=scores(55)),
        trial(f"{target}-3", target, "mnli", 2, en_dev=80.0, target_dev=scores(59), status="early_stopped"),
        trial(f"{target}-4", target, "qqp", 2, en_dev=None, status="failed"),
    ]


_TEMPLATE: list[Path] = []


def fresh_store(root: Path) -> str:
    """The tracking URI of a new, empty SQLite store under ``root``.

    Creating an MLflow database runs its migrations (seconds); they run once per process into a
    template database, which each store then copies.
    """
    if not _TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="xstilts-mlflow-template-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking.default_tracking_uri(template)).search_experiments()
        _TEMPLATE.append(template / "mlflow.db")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE[0], root / "mlflow.db")
    return tracking.default_tracking_uri(root)


def log_optuna(storage: Path, search: str, trials: list[FakeTrial]) -> Path:
    """Write the trials into ``<storage>/<search>/optuna.db`` as search.tuner's studies ``<search>.<target>``."""
    import optuna

    db = storage / search / "optuna.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    rdb = optuna.storages.RDBStorage(f"sqlite:///{db}")
    choices = sorted({t.intermediate for t in trials} | {"none"})
    distributions: dict[str, Any] = {
        "intermediate_task": optuna.distributions.CategoricalDistribution(choices),
        "intermediate.learning_rate": optuna.distributions.FloatDistribution(3e-4, 3e-3, log=True),
        "target.freeze_depth": optuna.distributions.IntDistribution(0, 2),
        "target.learning_rate": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True),
    }
    for target in dict.fromkeys(t.target for t in trials):
        study = optuna.create_study(study_name=f"{search}.{target}", storage=rdb, direction="maximize")
        for trial in trials:
            if trial.target != target or trial.status == "running":
                continue
            params = {k: v for k, v in point(trial).items() if k in distributions}
            failed = trial.status == "failed" or trial.en_dev is None
            # Ray's OptunaSearch tells an early-stopped trial as COMPLETE with its last value.
            value = None
            if trial.en_dev is not None and not failed:
                value = trial.en_dev - (5.0 if trial.status == "early_stopped" else 0.0)
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: distributions[k] for k in params},
                    value=value,
                    state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
                )
            )
    return db
