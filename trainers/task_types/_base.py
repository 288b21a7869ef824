"""What a task type is: the base every type module fills in, and the pieces several types share.

A type module (``trainers/task_types/<type>.py``) holds everything one ``TaskType`` needs, from the
canonical columns the loader reads a split into to the XTREME files its predictions are written as;
``trainers.task_types.TASK_TYPES`` maps each type to it. The data layer, the model and the evaluation
look a task's type up there instead of branching on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn

from trainers.errors import DataError
from trainers.tasks import TaskSpec, TaskType

IGNORE_INDEX = -100
"""The label of positions the loss skips (padding, a word's later sub-tokens)."""

Batch = dict[str, list[Any]]
"""A batch of rows as ``Dataset.map(batched=True)`` passes and returns it."""

Encode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(input_ids, attention_mask) ->`` what the type's head reads: the last hidden states [batch, length,
hidden], or for a ``sentence_level`` type one vector per sequence [batch, hidden], pooled the encoder's way
(``trainers.modeling.TransferModel.encode_sentences``)."""

TEXT = datasets.Value("string")
TEXTS = datasets.List(datasets.Value("string"))
IDS = datasets.List(datasets.Value("int32"))
MASK = datasets.List(datasets.Value("int8"))
INT = datasets.Value("int64")


@dataclass(frozen=True)
class FeaturePlan:
    """How ``featurize`` tokenizes a split of one type: the batch function, its extra arguments, the schema."""

    function: Callable[..., Batch]
    """Run by ``Dataset.map(batched=True)`` with ``tokenizer``, ``max_length`` and ``kwargs``."""
    kwargs: dict[str, Any]
    """Extra keyword arguments of ``function``."""
    schema: datasets.Features
    """The features it returns."""


class TaskTypeBase(ABC):
    """Everything one task type needs; a type module subclasses it and registers one instance."""

    type: TaskType
    """The type this module implements."""
    columns: tuple[str, ...]
    """The canonical columns a split of this type is read into, whatever its source calls them."""
    canonical_features: datasets.Features
    """Their ``datasets`` schema, so that every source comes out with identical types."""
    optional_roles: frozenset[str] = frozenset()
    """Roles a task's column map may leave out (the loader fills them with empty strings)."""
    label_roles: frozenset[str] = frozenset()
    """Roles whose raw values go through ``label_converter`` on loading."""
    names_from_data: str | None = None
    """The column whose sorted values are the label names when the registry lists none (CCG supertags)."""
    needs_label_names: bool = False
    """Its features cannot be built without label names."""
    uses_doc_stride: bool = False
    """Its features depend on ``model.doc_stride`` (sliding windows)."""
    features_version: int = 1
    """Bump when this type's features change: cached features, and intermediate checkpoints trained on a
    task of this type, are then rebuilt (other types' are kept)."""
    trainable: bool = True
    """It has a head, so it can be trained (intermediate or target phase)."""
    sentence_level: bool = False
    """Its head reads one pooled vector per sequence (``Encode``), not the token states: the first token's
    state, or the masked mean for encoders without a ``[CLS]``-like token (the T5 family)."""
    xtreme_suffix: str = "tsv"
    """The suffix of its XTREME prediction and label files."""
    miniature: str | None = None
    """The module of the miniature benchmark holding the generators of this type's tasks (each task's entry
    is in ``trainers.data.miniature.GENERATORS``); named, not imported, so that the data layer loads the
    miniature only to build it. ``None`` where the miniature generates no task of this type."""

    # -- loading ----------------------------------------------------------------------------------

    def label_converter(self, task: TaskSpec, where: str) -> Callable[[Any], Any]:
        """How a raw value of a label role becomes a canonical one, failing on values out of range."""
        names = task.label_names
        return lambda raw: label_name(raw, names, where)

    # -- features ---------------------------------------------------------------------------------

    def check_features_input(self, task: TaskSpec, dataset: datasets.Dataset, names: Sequence[str]) -> None:
        """Fail early, in one line, on a dataset the tokenizer function cannot handle."""
        missing = [c for c in self.columns if c not in dataset.column_names]
        if missing:
            raise DataError(
                f"{task.name}: dataset lacks canonical column(s) {', '.join(missing)} (use load_split)"
            )
        if self.needs_label_names and not names:
            raise DataError(
                f"{task.name}: no label names (pass label_names, e.g. the tags of the train split)"
            )

    @abstractmethod
    def feature_plan(
        self,
        task: TaskSpec,
        dataset: datasets.Dataset,
        *,
        doc_stride: int,
        training: bool,
        names: Sequence[str],
    ) -> FeaturePlan:
        """The tokenizer function, its arguments and the output schema for a split of ``task``."""

    # -- model ------------------------------------------------------------------------------------

    def make_head(self, num_labels: int, hidden: int, dropout: float) -> nn.Module:
        """A fresh, randomly initialised head."""
        raise ValueError(f"task type {self.type} has no trainable head")

    def make_encoder_head(
        self, encoder: nn.Module, num_labels: int, hidden: int, dropout: float
    ) -> nn.Module:
        """A fresh head on ``encoder``: ``make_head``, unless the head shares the encoder's weights (an LM
        head tied to the input embeddings)."""
        return self.make_head(num_labels, hidden, dropout)

    def forward(
        self, encode: Encode, head: nn.Module, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, Any]:
        """Loss (when labels are in ``batch``) and the head's outputs: one logit per class or token."""
        logits = head(encode(batch["input_ids"], batch["attention_mask"]))
        loss = None
        if "labels" in batch:
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE_INDEX
            )
        return loss, logits

    # -- evaluation -------------------------------------------------------------------------------

    def decode(
        self,
        task: TaskSpec,
        outputs: list[Any],
        examples: Any,
        features: Any,
        label_names: tuple[str, ...],
    ) -> tuple[Any, Any]:
        """Predictions and references in the form the task's metric takes, from the head's batched outputs."""
        raise ValueError(f"{task.name}: {self.type.value} tasks have no head to decode")

    def xtreme_texts(
        self, task: TaskSpec, predictions: Any, references: Any, label_names: tuple[str, ...]
    ) -> tuple[str, str]:
        """The text of the predictions file and of the labels file, in XTREME's format for the type."""
        raise ValueError(f"{task.name}: XTREME has no file format for {self.type.value} predictions")


# -- shared by several types ----------------------------------------------------------------------


def label_name(raw: Any, names: Sequence[str], where: str) -> str:
    """The canonical (string) label of a raw integer or string label, checked against ``names``."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise DataError(f"{where}: label {raw!r} is neither an integer nor a string")
    if isinstance(raw, str):
        # String labels are kept (CCG supertags); checked against the names where the registry has them.
        if names and raw not in names:
            raise DataError(f"{where}: label {raw!r} is not one of {', '.join(names)}")
        return raw
    if not 0 <= raw < len(names):
        raise DataError(f"{where}: label {raw} out of range for {len(names)} label names")
    return names[raw]


def label_ids(labels: Iterable[str], label_index: Mapping[str, int], where: str) -> list[int]:
    """The indices of ``labels`` among the label names."""
    try:
        return [label_index[label] for label in labels]
    except KeyError as error:
        raise DataError(f"{where}: label {error.args[0]!r} is not among the label names") from None


def rows_of(chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Rows of per-batch arrays whose length dimension differs between batches."""
    return [row for chunk in chunks for row in chunk]


def first_token_argmax(outputs: list[Any]) -> list[int]:
    """The highest-scoring class (or choice) of each row."""
    return [int(i) for i in np.concatenate(outputs).argmax(-1)]
