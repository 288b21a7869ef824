"""Canonical rows -> model features: the task type's tokenisation, a disk cache, collation.

What each task type tokenizes into is its module's ``feature_plan`` (``trainers/task_types``), listed in
docs/CONTRACTS.md; this module runs it, caches the result on disk and pads batches for the model.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from trainers._atomic import build_directory
from trainers.config import stable_hash
from trainers.errors import DataError
from trainers.progress import stage
from trainers.task_types import IGNORE_INDEX, type_of
from trainers.task_types._base import IDS, MASK, TEXT
from trainers.task_types.extractive_qa import postprocess_qa, qa_references
from trainers.task_types.retrieval import tokenize_texts
from trainers.tasks import TaskSpec

ANNOUNCED_ROWS = 10_000
"""Tokenizing a split this large (seconds to minutes) says so; smaller ones take well under a second."""

# Bump when the features of some task type change, so that old caches are not reused.
FEATURES_VERSION = 1
# What the model consumes; everything else (example_id, offset_mapping, word_index) is post-processing.
MODEL_INPUT_COLUMNS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "labels",
    "start_positions",
    "end_positions",
)


# -- featurize ----------------------------------------------------------------------------------


def featurize(
    task: TaskSpec,
    dataset: datasets.Dataset,
    tokenizer: Any,
    *,
    max_length: int,
    doc_stride: int,
    training: bool,
    label_names: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
) -> datasets.Dataset:
    """Tokenize a canonical split into the task type's features, cached on disk when ``cache_dir`` is set.

    Retrieval datasets must hold one text column (select ``source`` or ``target`` first).
    """
    names = tuple(label_names if label_names is not None else task.label_names)
    _check_dataset(task, dataset, tokenizer, names)
    key = stable_hash(
        {
            "version": FEATURES_VERSION,
            "type_version": type_of(task).features_version,
            "tokenizer": _tokenizer_identity(tokenizer),
            "task": task.name,
            "type": str(task.type),
            "cache_key": cache_key,
            "max_length": max_length,
            "doc_stride": doc_stride if type_of(task).uses_doc_stride else None,
            "training": training,
            "label_names": names,
            "dataset": dataset._fingerprint,
        }
    )
    if cache_dir is None:
        return _featurize_uncached(task, dataset, tokenizer, max_length, doc_stride, training, names, key)
    path = Path(cache_dir).expanduser() / _cache_name(task, cache_key, key)
    # The directory appears only by an atomic rename, so its presence means a complete cache.
    if path.is_dir():
        return datasets.load_from_disk(str(path))
    what = f"tokenizing {task.name} {cache_key or ''} ({len(dataset)} rows) into the feature cache"
    with stage(what) if len(dataset) >= ANNOUNCED_ROWS else contextlib.nullcontext():
        features = _featurize_uncached(
            task, dataset, tokenizer, max_length, doc_stride, training, names, key, keep_in_memory=True
        )
        return _save_atomically(features, path)


def featurize_texts(texts: Iterable[str], tokenizer: Any, max_length: int) -> datasets.Dataset:
    """``input_ids``/``attention_mask`` for each text (retrieval sentences), truncated to ``max_length``."""
    dataset = datasets.Dataset.from_dict({"text": list(texts)}, features=datasets.Features({"text": TEXT}))
    return dataset.map(
        tokenize_texts,
        batched=True,
        remove_columns=["text"],
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "column": "text"},
        features=datasets.Features({"input_ids": IDS, "attention_mask": MASK}),
        keep_in_memory=True,
        new_fingerprint=stable_hash([dataset._fingerprint, _tokenizer_identity(tokenizer), max_length]),
        desc="tokenize texts",
    )


def _tokenizer_identity(tokenizer: Any) -> list[Any]:
    """What distinguishes one tokenizer from another in cache keys: its name (or vocabulary) and size."""
    identity = [type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer)]
    if not tokenizer.name_or_path:
        # A tokenizer built in memory has no name: key on its vocabulary instead.
        identity.append(stable_hash(sorted(tokenizer.get_vocab().items())))
    return identity


def _featurize_uncached(
    task: TaskSpec,
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_length: int,
    doc_stride: int,
    training: bool,
    names: tuple[str, ...],
    fingerprint: str,
    keep_in_memory: bool = False,
) -> datasets.Dataset:
    """Run the task type's tokenizer function over the dataset (no cache lookup)."""
    plan = type_of(task).feature_plan(task, dataset, doc_stride=doc_stride, training=training, names=names)
    return dataset.map(
        plan.function,
        batched=True,
        remove_columns=dataset.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, **plan.kwargs},
        features=plan.schema,
        keep_in_memory=keep_in_memory,
        # Our own fingerprint: hashing a large tokenizer for datasets' default one is slow.
        new_fingerprint=fingerprint,
        desc=f"featurize {task.name}",
    )


def _check_dataset(task: TaskSpec, dataset: Any, tokenizer: Any, names: tuple[str, ...]) -> None:
    """Fail early, in one line, on inputs the tokenizer functions cannot handle."""
    if not isinstance(dataset, datasets.Dataset):
        raise DataError(f"{task.name}: featurize needs a datasets.Dataset, got {type(dataset).__name__}")
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"{task.name}: featurize needs a fast (Rust) tokenizer for offsets and word ids")
    type_of(task).check_features_input(task, dataset, names)


# -- cache ----------------------------------------------------------------------------------------


def _cache_name(task: TaskSpec, cache_key: str | None, key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", cache_key or "")
    return f"{task.name}-{readable}-{key}" if readable else f"{task.name}-{key}"


def _save_atomically(features: datasets.Dataset, path: Path) -> datasets.Dataset:
    """Write to a private temporary directory and rename it into place; readers never see half a cache."""
    # Another process that finished the same cache first wins: its copy is kept, ours dropped.
    build_directory(path, lambda temporary: features.save_to_disk(str(temporary)))
    # Reload from the cache so the first and later calls return the same memory-mapped dataset.
    return datasets.load_from_disk(str(path))


# -- batches --------------------------------------------------------------------------------------


def model_inputs(features: datasets.Dataset) -> datasets.Dataset:
    """The features without post-processing columns (``example_id``, ``offset_mapping``, ``word_index``)."""
    return features.select_columns([c for c in MODEL_INPUT_COLUMNS if c in features.column_names])


def collate(batch: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of feature rows to the longest sequence and stack them into long tensors."""
    if not batch:
        raise ValueError("collate: empty batch")
    rows = [{key: _as_lists(row[key]) for key in MODEL_INPUT_COLUMNS if key in row} for row in batch]
    pad_values = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}
    out: dict[str, torch.Tensor] = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if not isinstance(values[0], list):
            out[key] = torch.tensor(values, dtype=torch.long)
        elif values[0] and isinstance(values[0][0], list):
            # Multiple choice: [batch, n_choices, length], padded to the longest choice of the batch.
            if len({len(choices) for choices in values}) != 1:
                raise ValueError("collate: examples in one batch have different numbers of choices")
            length = max(len(seq) for choices in values for seq in choices)
            out[key] = torch.stack([_pad(choices, length, pad_values.get(key, 0)) for choices in values])
        else:
            length = max(len(seq) for seq in values)
            out[key] = _pad(values, length, pad_values.get(key, 0))
    return out


def _as_lists(value: Any) -> Any:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_as_lists(item) for item in value]
    return value


def _pad(sequences: list[list[int]], length: int, value: int) -> torch.Tensor:
    padded = torch.full((len(sequences), length), value, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        padded[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return padded


__all__ = [
    "ANNOUNCED_ROWS",
    "FEATURES_VERSION",
    "IGNORE_INDEX",
    "MODEL_INPUT_COLUMNS",
    "collate",
    "featurize",
    "featurize_texts",
    "model_inputs",
    "postprocess_qa",
    "qa_references",
]
