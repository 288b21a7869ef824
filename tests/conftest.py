"""Shared fixtures: one miniature benchmark, one tiny encoder and one feature cache per test session.

Every training config built here is small (64 train / 24 eval examples, sequences of 64 tokens or 96 for
QA, batches of 8, a few steps) so that a whole pipeline runs in seconds on one CPU core.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from studies import PROCESS_GROUP_ENV

from trainers.config import TransferConfig, apply_overrides
from trainers.tasks import TASKS, TaskType


def _worker_ray_root() -> Path | None:
    """This xdist worker's Ray temp root (None outside xdist); short: Ray's Unix sockets live under it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return Path(f"/tmp/xs-{worker}-{os.getppid()}") if worker else None


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n``), each worker's Ray gets a temp root of its own.

    ``ray.init()`` without an address joins the cluster named in ``<RAY_TMPDIR>/ray/ray_current_cluster``
    (the last ``ray start`` on the machine) when there is one: a test's cluster on one worker would take in
    another worker's searches. A root per worker keeps each worker's clusters its own.
    """
    root = _worker_ray_root()
    if root is not None:
        root.mkdir(exist_ok=True)
        os.environ["RAY_TMPDIR"] = str(root)


def pytest_unconfigure(config: pytest.Config) -> None:
    """An xdist worker's Ray temp root goes once its last test is done (and its in-process Ray is stopped)."""
    root = _worker_ray_root()
    if root is None:
        return
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
    shutil.rmtree(root, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with the longest tests first (a soak test, then a slow one), each module whole and in file
    order: with ``-n`` a module is one worker's unit, and no worker ends on a long scenario while the others
    sit idle; a module's fixtures are built once either way, and a run without ``-n`` runs the same tests."""

    def tier(item: pytest.Item) -> int:
        if item.get_closest_marker("soak"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    module_tier: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        module_tier[module] = min(module_tier.get(module, 2), tier(item))
    items.sort(key=lambda item: module_tier[item.nodeid.split("::")[0]])  # stable: file order within a tier


QA_TASKS = frozenset(name for name, task in TASKS.items() if task.type is TaskType.SPAN_QA)
"""Tasks whose configs get longer sequences: every extractive QA task of the registry."""


@pytest.fixture(autouse=True)
def _ray_auth_mode_stays_put() -> Any:
    """Undo what a local ``ray.init()`` in this process does to its environment: ``RAY_AUTH_MODE=token``.

    Ray 2.60 turns token authentication on for a new local cluster by setting that variable in the
    process that called ``ray.init()``; every process started later would inherit it and refuse a cluster
    whose token it does not have (a search launched with another ``HOME``) or be refused by the dashboard.
    """
    before = os.environ.get("RAY_AUTH_MODE")
    yield
    if before is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = before


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide ``data.cache_dir`` with the miniature and the tiny encoder already built in it."""
    from trainers.data.miniature import ensure_miniature
    from trainers.encoders import resolve_encoder

    root = tmp_path_factory.mktemp("xstilts-cache")
    ensure_miniature(root / "data")
    resolve_encoder("tiny", root)
    return root


def base_config(
    cache_dir: Path, output_dir: Path, target: str, intermediate: list[str] | None
) -> dict[str, Any]:
    """A tiny, fast config as plain data: few examples, short sequences (longer for QA), a few steps."""
    qa = target in QA_TASKS or any(task in QA_TASKS for task in intermediate or [])
    data: dict[str, Any] = {
        "target": {"task": target, "learning_rate": 1.0e-3, "batch_size": 8, "max_steps": 3},
        "model": {"name_or_path": "tiny", "max_seq_length": 96 if qa else 64, "doc_stride": 32},
        "data": {
            "source": "miniature",
            "cache_dir": str(cache_dir),
            "max_train_examples": 64,
            "max_eval_examples": 24,
        },
        "evaluation": {"batch_size": 32},
        "output_dir": str(output_dir),
    }
    if intermediate:
        data["intermediate"] = {
            "tasks": intermediate,
            "learning_rate": 1.0e-3,
            "batch_size": 8,
            "max_steps": 3,
        }
    return data


ConfigFactory = Callable[..., TransferConfig]


@pytest.fixture(scope="session")
def tiny_config(cache_dir: Path) -> ConfigFactory:
    """``make(output_dir, target, intermediate=None, overrides=None)``: ``base_config`` plus dotted overrides."""

    def make(
        output_dir: Path,
        target: str,
        intermediate: list[str] | None = None,
        overrides: list[str] | None = None,
    ) -> TransferConfig:
        data = apply_overrides(base_config(cache_dir, output_dir, target, intermediate), overrides or [])
        return TransferConfig.from_dict(data)

    return make


@pytest.fixture(scope="session")
def tiny_encoder_dir(cache_dir: Path) -> str:
    """The tiny encoder's directory in the session cache."""
    from trainers.encoders import resolve_encoder

    return resolve_encoder("tiny", cache_dir)


@pytest.fixture(scope="session")
def pawsx_heads() -> list[Any]:
    """The PAWS-X head alone: a ``build_model`` argument."""
    from trainers.modeling import HeadSpec
    from trainers.tasks import get_task

    return [HeadSpec.of(get_task("pawsx"))]


@pytest.fixture(scope="session")
def pawsx_batch(
    tiny_config: ConfigFactory, tiny_encoder_dir: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A real collated batch of 8 English PAWS-X training examples from the miniature."""
    from trainers.data import collate
    from trainers.prepare import label_names_for, load_tokenizer, train_features
    from trainers.tasks import get_task

    config = tiny_config(tmp_path_factory.mktemp("unused-output"), "pawsx")
    task = get_task("pawsx")
    tokenizer = load_tokenizer(tiny_encoder_dir)
    features = train_features(config, task, tokenizer, label_names_for(task, config))
    return collate([features[i] for i in range(8)], tokenizer.pad_token_id)


@pytest.fixture
def child_env() -> dict[str, str]:
    """The environment for a child training process: this one's, minus any process-group variables."""
    env = {key: value for key, value in os.environ.items() if key not in PROCESS_GROUP_ENV}
    env.setdefault("OMP_NUM_THREADS", "1")  # the machine is shared: one core per child
    env["PYTHONUNBUFFERED"] = "1"
    return env
