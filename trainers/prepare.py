"""Data a phase needs, ready for the model: tokenizer, label names, train features, evaluation sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers.config import TransferConfig
from trainers.data import featurize, load_split, train_languages
from trainers.task_types import type_of
from trainers.tasks import TaskSpec


@dataclass
class EvalSet:
    """One task's examples and features for one split and language."""

    task: TaskSpec
    """The task whose head and metric score it."""
    language: str
    """Language code."""
    split: str
    """dev or test."""
    examples: Any
    """Canonical rows (a ``datasets.Dataset``)."""
    features: Any
    """Tokenized rows (a ``datasets.Dataset``)."""


def cache_dir(config: TransferConfig) -> Path:
    """The expanded cache directory."""
    return Path(config.data.cache_dir).expanduser()


def load_tokenizer(encoder_dir: str) -> Any:
    """The encoder's tokenizer (fast tokenizers only: offsets are needed for QA and tagging)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder_dir, use_fast=True)


def label_names_for(task: TaskSpec, config: TransferConfig) -> tuple[str, ...]:
    """The registry's label names, or the sorted tags of the English train split (e.g. CCG supertags)."""
    column = type_of(task).names_from_data
    if task.label_names or column is None:
        return task.label_names
    rows = load_split(task, "train", "en", config.data)
    names: set[str] = set()
    for value in rows[column]:
        names.update(value if isinstance(value, list) else [value])
    return tuple(sorted(names))


def _featurize(
    config: TransferConfig,
    task: TaskSpec,
    rows: Any,
    tokenizer: Any,
    label_names: tuple[str, ...],
    training: bool,
    key: str,
) -> Any:
    return featurize(
        task,
        rows,
        tokenizer,
        max_length=config.model.max_seq_length,
        doc_stride=config.model.doc_stride,
        training=training,
        label_names=label_names,
        cache_dir=cache_dir(config) / "features",
        cache_key=key,
    )


def train_features(
    config: TransferConfig, task: TaskSpec, tokenizer: Any, label_names: tuple[str, ...]
) -> Any:
    """Tokenized train split of ``task`` (cached on disk): English, or every language of a translate-train
    task, mixed (concatenated; the phase's sampler shuffles them)."""
    parts = [
        _featurize(
            config,
            task,
            load_split(task, "train", language, config.data),
            tokenizer,
            label_names,
            True,
            f"{task.name}/{language}/train",
        )
        for language in train_languages(task, config.data)
    ]
    if len(parts) == 1:
        return parts[0]
    import datasets

    return datasets.concatenate_datasets(parts)


def eval_set(
    config: TransferConfig,
    task: TaskSpec,
    split: str,
    language: str,
    tokenizer: Any,
    label_names: tuple[str, ...],
) -> EvalSet:
    """Examples and tokenized features of one split and language (cached on disk)."""
    rows = load_split(task, split, language, config.data)
    features = _featurize(
        config, task, rows, tokenizer, label_names, False, f"{task.name}/{language}/{split}"
    )
    return EvalSet(task, language, split, rows, features)
