"""Helpers of the tests that run whole searches as a user does: a small study, the driver command, its runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROCESS_GROUP_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")
"""Variables that name a process group. ``init_distributed`` sets them in the test process (for the
in-process pipeline tests); a child process or Ray worker must not inherit them or it would join that group."""


def tiny_study(
    directory: Path,
    cache_dir: Path,
    *,
    name: str,
    samples: int,
    target: dict[str, Any],
    scheduler: dict[str, Any],
    languages: list[str],
    worker_group: str = "auto",
) -> Path:
    """Write ``<name>.yaml``: a udpos study on the tiny encoder, none vs ccg as intermediate task.

    The intermediate learning rate is fixed, so intermediate-checkpoint keys repeat across trials (the
    cache is exercised), and the two seeded points are the no-intermediate baseline and ccg.
    ``target`` adds to the target phase's settings (steps, eval and checkpoint intervals);
    ``worker_group`` is ``scaling.worker_group`` (``always``: each trial a Ray Train job).
    """
    space = {
        "name": name,
        "targets": ["udpos"],
        "base": {
            "model": {"name_or_path": "tiny", "max_seq_length": 48, "doc_stride": 16},
            "data": {
                "source": "miniature",
                "cache_dir": str(cache_dir),
                "max_train_examples": 64,
                "max_eval_examples": 16,
            },
            # One Train worker per trial, sized so that one fits on a 1-CPU node next to nothing else.
            "scaling": {"num_workers": 1, "cpus_per_worker": 0.95, "worker_group": worker_group},
            "intermediate": {"batch_size": 8, "max_steps": 4},
            "target": {"batch_size": 8, **target},
            "evaluation": {"languages": languages},
        },
        "search": {
            "intermediate_task": {"type": "categorical", "choices": ["none", "ccg"]},
            "intermediate.learning_rate": {
                "type": "categorical",
                "choices": [1.0e-3],
                "when": {"intermediate_task": {"not": "none"}},
            },
            "target.learning_rate": {"type": "float", "low": 1.0e-4, "high": 3.0e-3, "log": True},
        },
        "points_to_evaluate": [
            {"intermediate_task": "none", "target.learning_rate": 1.0e-3},
            {
                "intermediate_task": "ccg",
                "intermediate.learning_rate": 1.0e-3,
                "target.learning_rate": 1.0e-3,
            },
        ],
        "tuner": {"num_samples": samples, "metric": "en_dev", "scheduler": scheduler, "sampler_seed": 0},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def search_command(space: Path, name: str, storage: Path, uri: str, *extra: str) -> list[str]:
    """``python search/main.py ...``, the command ``ray submit`` runs on a cluster's head."""
    options = ["--space", str(space), "--name", name, "--storage", str(storage), "--tracking-uri", uri]
    return [sys.executable, str(ROOT / "search" / "main.py"), *options, *extra]


def trial_runs(uri: str, name: str) -> list[Any]:
    """The MLflow child runs (one per trial) of search ``name``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"xstilts-{name}")
    if experiment is None:
        return []
    return list(
        client.search_runs(
            [experiment.experiment_id], filter_string="tags.`xstilts.kind` = 'trial'", max_results=1000
        )
    )


def driver_env() -> dict[str, str]:
    """A search driver's environment: this one's, minus any process-group variables of in-process tests."""
    env = {key: value for key, value in os.environ.items() if key not in PROCESS_GROUP_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file (empty if it does not exist)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]
