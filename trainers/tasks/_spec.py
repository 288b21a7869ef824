"""What a task is: one frozen dataclass per task, so that the registry is data, not code."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from trainers.errors import UserError


class TaskType(StrEnum):
    """The shape of a task's input and output; each has a module in ``trainers/task_types`` holding its
    canonical columns, features, head and loss, and how its predictions are decoded."""

    SINGLE_CLASSIFICATION = "single_classification"
    PAIR_CLASSIFICATION = "pair_classification"
    TAGGING = "token_tagging"
    SPAN_QA = "extractive_qa"
    MULTIPLE_CHOICE = "multiple_choice"
    RETRIEVAL = "retrieval"
    MASKED_LM = "masked_lm"


INTERMEDIATE_ONLY_TYPES = frozenset({TaskType.MASKED_LM})
"""Types that only train an encoder further (no XTREME metric): a task of one is an intermediate task."""


SPLITS = ("train", "dev", "test")


class TaskSpecError(UserError, ValueError):
    """A task entry whose fields contradict one another (one line)."""


def _split_name(expression: str) -> str:
    """The split that a hub split expression reads: ``train`` for ``train[2000:52000]``."""
    return expression.partition("[")[0]


@dataclass(frozen=True)
class HubSource:
    """Where a task's real data lives on the Hugging Face hub."""

    path: str
    """Dataset id, e.g. ``facebook/xnli``."""
    config: str | None = None
    """Config name; ``{lang}`` is replaced by the language's hub code, e.g. ``PAN-X.{lang}``."""
    splits: dict[str, str] = field(default_factory=dict)
    """Our split (train/dev/test) -> the hub's split expression, e.g. ``{"dev": "validation"}``."""
    lang_codes: dict[str, str] = field(default_factory=dict)
    """Language -> the hub's code for it, where the hub does not use the ISO 639-1 code."""
    id_prefix: dict[str, str] = field(default_factory=dict)
    """Language -> prefix of the ``id`` column, for hub datasets that mix languages in one config."""
    missing_splits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Language -> our splits its hub config lacks (UD Kazakh has no dev split, Thai only a test split)."""
    revision: str | None = None
    """Git revision to read instead of ``main`` (a commit, a branch or ``refs/pr/N``): where ``main`` holds
    only a loading script, the hub's own parquet conversion of it (a commit of ``refs/convert/parquet``)."""
    data_files: dict[str, str] = field(default_factory=dict)
    """The hub's split name -> file pattern at ``revision``, for revisions whose files ``datasets`` cannot
    sort into splits by itself (the converter's branch of a multi-config repo holds every config's
    ``<config>/<split>/*.parquet``): e.g. ``{"train": "copa/train/*.parquet"}``."""
    verified: str = ""
    """How the hub id was checked to load with ``datasets`` 5 (parquet files, no loading script)."""
    script_only: bool = False
    """The hub repo holds only a loading script, which ``datasets`` 5 refuses: use local files."""

    def __post_init__(self) -> None:
        if self.data_files:
            unnamed = sorted({_split_name(expr) for expr in self.splits.values()} - set(self.data_files))
            if unnamed:
                raise TaskSpecError(
                    f"hub source {self.path}: data_files names no files for split(s) {', '.join(unnamed)}"
                )

    def files_of(self, expression: str) -> dict[str, str]:
        """``data_files`` for the split that the hub split ``expression`` reads (empty without ``data_files``):
        only that split's files, so that ``datasets`` prepares no other split."""
        if not self.data_files:
            return {}
        name = _split_name(expression)
        return {name: self.data_files[name]}

    def config_for(self, language: str) -> str | None:
        """The hub config name holding ``language``."""
        if self.config is None:
            return None
        return self.config.format(lang=self.lang_codes.get(language, language))


@dataclass(frozen=True)
class TaskSpec:
    """One task: its type, where its data lives, how its columns map, its languages and metric."""

    name: str
    """Registry key, also the name used in configs and spaces."""
    type: TaskType
    """Input/output shape."""
    hub: HubSource | None
    """Real data on the hub; ``None`` for tasks only available as local files (e.g. CCGbank)."""
    columns: dict[str, str]
    """Canonical role -> source column. A dotted path reads a nested field (``choices.text``);
    a comma-separated list gathers several columns into one list (``answer0,answer1``)."""
    languages: tuple[str, ...] = ("en",)
    """Every language the task is evaluated on; English first."""
    label_names: tuple[str, ...] = ()
    """Class / tag names, in the order of the hub's integer labels (or the raw string labels)."""
    metric: str = "accuracy"
    """Key into ``trainers.metrics.METRICS``."""
    role: str = "target"
    """``target`` (an XTREME task), ``intermediate`` (an English intermediate task), or ``both``."""
    train_task: str | None = None
    """Registry task whose English train split trains this target (XQuAD and MLQA train on SQuAD v1.1)."""
    english_dev_task: str | None = None
    """Registry task whose English dev split is the English dev set, where this task has none."""
    description: str = ""
    """One line for ``xstilts tasks``."""
    train_languages: tuple[str, ...] = ("en",)
    """Languages whose train splits, mixed, train this task: English alone, or every language of a
    translate-train set (the machine-translated training data published with XNLI and PAWS-X)."""
    train_size: int | None = None
    """Examples in the full train split (of every ``train_languages``; the published count, source beside each entry), which the
    cost model of ``xstilts search --dry-run`` reads; ``None`` where the task trains on ``train_task`` or
    has no training data (retrieval)."""

    def __post_init__(self) -> None:
        if self.type in INTERMEDIATE_ONLY_TYPES and self.role != "intermediate":
            raise TaskSpecError(
                f"task {self.name}: a {self.type.value} task is an intermediate task only "
                f"(role='intermediate'), got role={self.role!r}"
            )

    @property
    def num_labels(self) -> int:
        """Number of classes (classification) or tags (tagging); 0 for other types."""
        return len(self.label_names)

    @property
    def is_retrieval(self) -> bool:
        """Retrieval tasks have no training data and are evaluated straight after the intermediate phase."""
        return self.type is TaskType.RETRIEVAL
