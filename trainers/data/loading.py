"""Read a task's split from the hub, local files, an XTREME download or the miniature into the canonical columns.

Whatever the source, ``load_split`` returns exactly the canonical columns of the task's type (its module in
``trainers/task_types``; see docs/CONTRACTS.md), so that everything downstream is source-agnostic. An XTREME
download (``data.source: xtreme``) is read by ``trainers/data/xtreme_layout.py``, in XTREME's own formats.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import datasets
from datasets.exceptions import DataFilesNotFoundError, DatasetNotFoundError

from trainers.config import DataConfig, stable_hash
from trainers.errors import DataError
from trainers.task_types import TASK_TYPES, type_of
from trainers.tasks import SPLITS, HubSource, TaskSpec, TaskType, get_task

CANONICAL_FEATURES: dict[TaskType, datasets.Features] = {
    task_type: module.canonical_features for task_type, module in TASK_TYPES.items()
}
"""The canonical schema of each task type, so that hub and local data come out with identical types."""


# -- public API ---------------------------------------------------------------------------------


def load_split(task: TaskSpec, split: str, language: str, data: DataConfig) -> datasets.Dataset:
    """One split of one language of ``task``, in the task type's canonical columns.

    A task in ``data.dev_as_train`` reads its train and dev splits from its dev split: the first N rows
    (N its entry) are its dev set, the rest its training set.
    """
    if split not in SPLITS:
        raise DataError(f"{task.name}: unknown split {split!r}; splits: {', '.join(task_splits(task))}")
    held_out = data.dev_as_train.get(task.name)
    if held_out is None or split == "test":
        return _load(task, split, language, data, capped=True)
    dev = _load(task, "dev", language, data, capped=False)
    if held_out >= len(dev):
        raise DataError(
            f"data.dev_as_train: {task.name}'s {language} dev split has {len(dev)} rows; holding out "
            f"{held_out} leaves none to train on"
        )
    rows = dev.select(range(held_out)) if split == "dev" else dev.select(range(held_out, len(dev)))
    return _first_rows(rows, split, data)


def _load(task: TaskSpec, split: str, language: str, data: DataConfig, capped: bool) -> datasets.Dataset:
    """One split as the source holds it, cut to ``data``'s cap for the split when ``capped``."""
    if data.source == "xtreme":
        # Lazy: the module imports this one. Its readers give canonical columns, labels checked.
        from trainers.data import xtreme_layout

        assert data.data_dir is not None  # DataConfig requires it for this source
        rows = xtreme_layout.load_split(
            task, split, language, data.data_dir, cache_dir=Path(data.cache_dir).expanduser() / "xtreme-rows"
        )
        return _first_rows(rows, split, data) if capped else rows
    if data.source == "hub":
        raw = _load_hub(task, split, language)
    else:
        path = _local_file(task, split, language, data)
        # The real path: datasets fingerprints a file by its name, and the miniature's files are reached
        # through a view whose name changes when any task is added; the features cached stay valid.
        raw = datasets.load_dataset(
            "json",
            data_files=str(path.resolve()),
            split="train",
            cache_dir=str(_cache_root(data) / "hf_datasets"),
        )
    if capped:
        raw = _first_rows(raw, split, data)
    return _canonicalise(task, raw, f"{task.name} {split}/{language}")


def _first_rows(rows: datasets.Dataset, split: str, data: DataConfig) -> datasets.Dataset:
    """``rows`` cut to ``data``'s cap for ``split``."""
    cap = data.max_train_examples if split == "train" else data.max_eval_examples
    if cap is not None and cap < len(rows):
        # The first N rows: deterministic, and the same rows for every trial.
        return rows.select(range(cap))
    return rows


def available_languages(task: TaskSpec, data: DataConfig) -> tuple[str, ...]:
    """Languages of ``task`` that ``data``'s source holds (English first where present); for an XTREME
    download, those with a file of any split (``xtreme_layout.evaluated_languages`` narrows to one)."""
    if data.source == "hub":
        return task.languages
    if data.source == "xtreme":
        from trainers.data import xtreme_layout

        assert data.data_dir is not None
        return xtreme_layout.languages(task, Path(data.data_dir).expanduser())
    task_dir = _data_root(data) / task.name
    if not task_dir.is_dir():
        return ()
    present = {d.name for d in task_dir.iterdir() if d.is_dir() and any(d.glob("*.jsonl"))}
    # Registry order first (English leads), then anything else the directory holds.
    return tuple(lang for lang in task.languages if lang in present) + tuple(
        sorted(present - set(task.languages))
    )


def train_languages(task: TaskSpec, data: DataConfig) -> tuple[str, ...]:
    """The languages whose train splits, mixed, train ``task``: its ``train_languages`` (English alone for
    most tasks); on local files and the miniature, those of them the directory holds (the miniature has
    four languages), English always (its absence is the loader's one-line error)."""
    if len(task.train_languages) == 1 or data.source == "hub":
        return task.train_languages
    present = set(available_languages(task, data))
    return tuple(lang for lang in task.train_languages if lang == "en" or lang in present)


def task_splits(task: TaskSpec) -> tuple[str, ...]:
    """The splits the task has on the hub (all of train/dev/test for local-only tasks)."""
    if task.hub is None:
        return SPLITS
    return tuple(split for split in SPLITS if split in task.hub.splits)


def resolve_train_task(task: TaskSpec) -> TaskSpec:
    """The task whose English train split trains ``task`` (XQuAD and MLQA train on SQuAD v1.1)."""
    return get_task(task.train_task) if task.train_task else task


def resolve_english_dev(task: TaskSpec) -> tuple[TaskSpec, str]:
    """The task and split holding ``task``'s English dev set."""
    if task.english_dev_task:
        return get_task(task.english_dev_task), "dev"
    return task, "dev"


# -- sources ------------------------------------------------------------------------------------


def _cache_root(data: DataConfig) -> Path:
    return Path(data.cache_dir).expanduser()


def _data_root(data: DataConfig) -> Path:
    """The root of ``<task>/<lang>/<split>.jsonl`` files for local and miniature sources."""
    if data.source == "miniature":
        # Lazy: the miniature generator is a separate module, only needed for this source.
        from trainers.data.miniature import ensure_miniature

        return ensure_miniature(
            Path(data.data_dir).expanduser() if data.data_dir else _cache_root(data) / "data"
        )
    if not data.data_dir:
        raise DataError("data.source=local needs data.data_dir")
    root = Path(data.data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data.data_dir {root} does not exist")
    return root


def _local_file(task: TaskSpec, split: str, language: str, data: DataConfig) -> Path:
    """The jsonl file of a split, checked to exist (with the alternatives named when it does not)."""
    root = _data_root(data)
    languages = available_languages(task, data)
    if language not in languages:
        listed = ", ".join(languages) or "none"
        raise DataError(
            f"{task.name}: no language {language!r} under {root / task.name}; languages: {listed}"
        )
    path = root / task.name / language / f"{split}.jsonl"
    if not path.is_file():
        present = [s for s in SPLITS if (path.parent / f"{s}.jsonl").is_file()]
        raise DataError(f"{task.name}: missing file {path}; splits present: {', '.join(present) or 'none'}")
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    if not first.strip():
        raise DataError(f"{task.name}: file {path} is empty")
    try:
        row = json.loads(first)
    except json.JSONDecodeError as error:
        raise DataError(f"{task.name}: {path} line 1 is not JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{task.name}: {path} line 1 is not a JSON object")
    # Checked on the first row, before the whole file is parsed.
    _check_columns(task, row, str(path))
    return path


def _load_hub(task: TaskSpec, split: str, language: str) -> datasets.Dataset:
    """Download (or read the hub cache of) one split, filtered to ``language`` where configs mix them."""
    hub = task.hub
    if hub is None:
        raise DataError(f"{task.name} has no hub source (licensed data): use data.source=local")
    if split not in hub.splits:
        raise DataError(f"{task.name}: no split {split!r} on the hub; splits: {', '.join(task_splits(task))}")
    if language not in task.languages or (hub.id_prefix and language not in hub.id_prefix):
        raise DataError(f"{task.name}: no language {language!r}; languages: {', '.join(task.languages)}")
    if hub.script_only:
        raise DataError(
            f"{task.name}: {hub.path} is a script-based hub dataset, which datasets {datasets.__version__} "
            "no longer loads; use data.source=local with its files"
        )
    if split in hub.missing_splits.get(language, ()):
        raise DataError(
            f"{task.name}: no split {split!r} for {language!r} on the hub ({hub.config_for(language)})"
        )
    dataset = _hub_dataset(task, hub, hub.config_for(language), hub.splits[split])
    if not isinstance(dataset, datasets.Dataset):
        raise DataError(f"{task.name}: {hub.path} split {hub.splits[split]!r} is not a single dataset")
    where = f"hub dataset {_hub_name(hub)} ({hub.config_for(language)})"
    _check_columns(task, dict(dataset.features), where)
    if hub.id_prefix:
        if "id" not in dataset.column_names:
            raise DataError(f"{task.name}: {where} has no column 'id' to select {language!r} by")
        prefix = hub.id_prefix[language]
        dataset = dataset.filter(
            lambda ids: [i.startswith(prefix) for i in ids],
            input_columns="id",
            batched=True,
            new_fingerprint=stable_hash([dataset._fingerprint, "id-prefix", prefix]),
        )
    return dataset


def _hub_name(hub: HubSource) -> str:
    """The hub id, with the revision read where it is not ``main``."""
    return f"{hub.path}@{hub.revision}" if hub.revision else hub.path


def _hub_dataset(task: TaskSpec, hub: HubSource, config: str | None, split: str) -> Any:
    """``datasets.load_dataset`` at the source's revision and files, with the hub's refusals as one-line
    DataErrors instead of tracebacks."""
    options: dict[str, Any] = {}
    if hub.revision:
        options["revision"] = hub.revision
    if hub.data_files:
        options["data_files"] = hub.files_of(split)
    try:
        return datasets.load_dataset(hub.path, config, split=split, **options)
    except RuntimeError as error:
        if "scripts are no longer supported" not in str(error):
            raise
        raise DataError(
            f"{task.name}: {_hub_name(hub)} is a script-based hub dataset, which datasets "
            f"{datasets.__version__} no longer loads; use data.source=local with its files"
        ) from None
    except ValueError as error:
        if "Unknown split" not in str(error):
            raise
        raise DataError(f"{task.name}: {_hub_name(hub)} ({config}) has no split {split!r}") from None
    except (DatasetNotFoundError, DataFilesNotFoundError) as error:
        if not options:
            raise
        # A pinned revision the hub no longer has, or files that are not at it.
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{task.name}: {_hub_name(hub)}: {reason}") from None


# -- column mapping ------------------------------------------------------------------------------


def _source_paths(task: TaskSpec) -> list[str]:
    """Every source column path the task's map reads (comma lists split into their columns)."""
    task_type = type_of(task)
    paths: list[str] = []
    for role in task_type.columns:
        spec = task.columns.get(role)
        if spec is None:
            if role not in task_type.optional_roles:
                raise DataError(f"{task.name}: the registry maps no column to required role {role!r}")
            continue
        paths.extend(part.strip() for part in spec.split(","))
    return paths


def _check_columns(task: TaskSpec, sample: Mapping[str, Any], where: str) -> None:
    """Fail naming the missing column, ``where`` it is missing and the present columns.

    ``sample`` maps each present column to a value (a first row) or a feature type (hub schema);
    either is a dict for nested columns, whose fields are checked too.
    """
    for path in _source_paths(task):
        head, _, field = path.partition(".")
        if head not in sample:
            raise DataError(f"{task.name}: {where} has no column {head!r} (columns: {', '.join(sample)})")
        nested = sample[head]
        if field and isinstance(nested, dict) and field not in nested:
            raise DataError(
                f"{task.name}: {where} column {head!r} has no field {field!r} (fields: {', '.join(nested)})"
            )


def _read(batch: dict[str, list[Any]], spec: str) -> list[Any]:
    """The values of one role in a batch: a column, a nested field, or several columns gathered."""
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) > 1:
        columns = [_read(batch, part) for part in parts]
        return [list(values) for values in zip(*columns, strict=True)]
    head, _, field = spec.partition(".")
    values = batch[head]
    if field:
        return [value[field] if value is not None else None for value in values]
    return values


def _canonicalise(task: TaskSpec, raw: datasets.Dataset, where: str) -> datasets.Dataset:
    """Map the raw columns to the canonical ones, converting labels, dropping everything else."""
    task_type = type_of(task)
    convert = task_type.label_converter(task, where)

    def to_canonical(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        size = len(next(iter(batch.values())))
        out: dict[str, list[Any]] = {}
        for role in task_type.columns:
            spec = task.columns.get(role)
            if spec is None and role in task_type.optional_roles:
                out[role] = [""] * size
                continue
            assert spec is not None  # checked by _source_paths
            values = _read(batch, spec)
            out[role] = [convert(value) for value in values] if role in task_type.label_roles else values
        return out

    return raw.map(
        to_canonical,
        batched=True,
        remove_columns=raw.column_names,
        features=task_type.canonical_features,
        desc=f"canonicalise {where}",
        # Our own fingerprint: datasets would otherwise hash this closure with dill, which is slow and,
        # inside Ray workers, prints the closure's disassembly to the logs.
        new_fingerprint=stable_hash(
            [raw._fingerprint, task.name, sorted(task.columns.items()), "canonical-v1"]
        ),
    )


def _label_converter(task: TaskSpec, where: str) -> Callable[[Any], Any]:
    """How a raw label (or tag sequence) becomes a canonical one, failing on values out of range."""
    return type_of(task).label_converter(task, where)
