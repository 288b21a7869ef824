"""Where a search keeps what it writes, and what it is called in MLflow and Optuna: one object for the
tuner that writes them and for ``select``, ``report`` and the CLI that read them back.

Import-free on purpose (no Ray, no torch): ``xstilts select`` and ``xstilts report`` load it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXPERIMENT_PREFIX = "xstilts"
"""A search's MLflow experiment is ``xstilts-<search>``."""
DEFAULT_STORAGE = "runs/searches"
"""``xstilts search --storage`` unless told (or ``$XSTILTS_STORAGE``)."""
REMOTE_LOCAL_ROOT = "~/.xstilts"
"""Where driver-side state lives when the storage is a URI (s3://...): Optuna's SQLite needs a local file."""
OPTUNA_DB = "optuna.db"
"""The search's Optuna RDB (one study per target), under its local root."""
TRACKING_JOURNAL = "mlflow-journal"
"""Under a search's local root: one journal of MLflow writes per target (``search.outbox``)."""


def is_remote(storage: str) -> bool:
    """Whether ``storage`` is a URI (s3://, gs://, ...) rather than a local path."""
    return "://" in storage


@dataclass(frozen=True)
class SearchLayout:
    """The names and paths of search ``search`` kept under ``storage`` (a local path or a URI)."""

    search: str
    """The search's name (``--name``; the space's name by default)."""
    storage: str = DEFAULT_STORAGE
    """The search's ``--storage``: Tune/Train results, and (when local) its Optuna RDB and MLflow journal."""

    @property
    def experiment_name(self) -> str:
        """The search's MLflow experiment."""
        return f"{EXPERIMENT_PREFIX}-{self.search}"

    @staticmethod
    def search_of(experiment_name: str) -> str | None:
        """The search an experiment name belongs to, or None for an experiment that is not a search's."""
        prefix = f"{EXPERIMENT_PREFIX}-"
        return experiment_name[len(prefix) :] if experiment_name.startswith(prefix) else None

    @staticmethod
    def experiment_filter() -> str:
        """An MLflow ``search_experiments`` filter matching every search's experiment."""
        return f"name LIKE '{EXPERIMENT_PREFIX}-%'"

    def study_name(self, target: str) -> str:
        """The Optuna study (and Tune experiment stem) of ``target``'s study."""
        return f"{self.search}.{target}"

    @property
    def storage_root(self) -> str:
        """``storage`` as Tune is given it: a URI as is, a path absolute (Ray changes directories)."""
        return self.storage if is_remote(self.storage) else str(Path(self.storage).expanduser().resolve())

    @property
    def tune_root(self) -> str:
        """Where the search's Tune experiments live: one per target, ``<tune_root>/<target>``."""
        return f"{self.storage_root}/{self.search}"

    def tune_path(self, target: str) -> str:
        """``target``'s Tune experiment (what ``Tuner.restore`` resumes)."""
        return f"{self.tune_root}/{target}"

    @property
    def train_storage(self) -> str:
        """Where the trials' Ray Train jobs keep their checkpoints."""
        return f"{self.tune_root}/train"

    @property
    def local_root(self) -> Path:
        """A local directory for driver-side state (Optuna's database, the MLflow journal), even when storage is remote."""
        root = Path(REMOTE_LOCAL_ROOT) if is_remote(self.storage) else Path(self.storage)
        return root.expanduser().resolve() / self.search

    @property
    def optuna_db(self) -> Path:
        """The search's Optuna RDB file."""
        return self.local_root / OPTUNA_DB

    @property
    def optuna_url(self) -> str:
        """The SQLAlchemy URL of ``optuna_db``."""
        return f"sqlite:///{self.optuna_db}"

    def journal(self, target: str) -> Path:
        """``target``'s journal of MLflow writes."""
        return self.local_root / TRACKING_JOURNAL / f"{target}.jsonl"


__all__ = ["DEFAULT_STORAGE", "EXPERIMENT_PREFIX", "OPTUNA_DB", "SearchLayout", "is_remote"]
