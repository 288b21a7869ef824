"""The data layer: task splits in canonical columns (``load_split``) and model features (``featurize``).

``ensure_miniature`` and ``MINIATURE_LANGUAGES`` (the generated offline benchmark) are loaded on
first use, so that importing this package never generates or imports the miniature.
"""

from __future__ import annotations

from typing import Any

import datasets as _datasets

from trainers.data.features import (
    MODEL_INPUT_COLUMNS,
    collate,
    featurize,
    featurize_texts,
    model_inputs,
    postprocess_qa,
    qa_references,
)
from trainers.data.loading import (
    CANONICAL_FEATURES,
    DataError,
    available_languages,
    load_split,
    resolve_english_dev,
    resolve_train_task,
    task_splits,
    train_languages,
)

# Tokenization progress bars would bury the scores on a terminal and in Ray logs.
_datasets.disable_progress_bars()

_LAZY = ("MINIATURE_LANGUAGES", "ensure_miniature")


def __getattr__(name: str) -> Any:
    # Lazy re-export of the miniature module (PEP 562).
    if name in _LAZY:
        from trainers.data import miniature

        return getattr(miniature, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CANONICAL_FEATURES",
    "MINIATURE_LANGUAGES",
    "MODEL_INPUT_COLUMNS",
    "DataError",
    "available_languages",
    "collate",
    "ensure_miniature",
    "featurize",
    "featurize_texts",
    "load_split",
    "model_inputs",
    "postprocess_qa",
    "qa_references",
    "resolve_english_dev",
    "resolve_train_task",
    "task_splits",
    "train_languages",
]
