"""What single-sentence and sentence-pair classification share: one label per text, a head on the pooled sequence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import torch
from torch import nn

from trainers.task_types._base import (
    IDS,
    INT,
    MASK,
    Batch,
    FeaturePlan,
    TaskTypeBase,
    first_token_argmax,
    label_ids,
)
from trainers.tasks import TaskSpec


class ClassificationHead(nn.Module):
    """Sentence(-pair) classification on the pooled sequence (XLM-R's head: dense, tanh, projection)."""

    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = self.dropout(pooled)
        return self.out(self.dropout(torch.tanh(self.dense(x))))


def tokenize_classification(
    batch: Batch, tokenizer: Any, max_length: int, label_index: Mapping[str, int], where: str
) -> Batch:
    """``input_ids``/``attention_mask`` of ``text_a`` (and ``text_b`` when present) and the label index."""
    encoded = tokenizer(
        batch["text_a"],
        batch.get("text_b"),
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
    )
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "labels": label_ids(batch["label"], label_index, where),
    }


class ClassificationType(TaskTypeBase):
    """One label per example (the ``label`` column), predicted from the pooled sequence."""

    sentence_level = True
    label_roles = frozenset({"label"})
    needs_label_names = True
    miniature = "trainers.data.miniature._classification"

    def feature_plan(
        self,
        task: TaskSpec,
        dataset: datasets.Dataset,
        *,
        doc_stride: int,
        training: bool,
        names: Sequence[str],
    ) -> FeaturePlan:
        """Tokenize the text(s); the label becomes its index among ``names``."""
        schema = datasets.Features({"input_ids": IDS, "attention_mask": MASK, "labels": INT})
        index = {name: i for i, name in enumerate(names)}
        return FeaturePlan(tokenize_classification, {"label_index": index, "where": task.name}, schema)

    def make_head(self, num_labels: int, hidden: int, dropout: float) -> nn.Module:
        """XLM-R's classification head."""
        return ClassificationHead(hidden, num_labels, dropout)

    def decode(
        self,
        task: TaskSpec,
        outputs: list[Any],
        examples: Any,
        features: Any,
        label_names: tuple[str, ...],
    ) -> tuple[Any, Any]:
        """Class indices, not names: binary F1 (QQP) takes class 1 as the positive class."""
        references = [label_names.index(name) for name in examples["label"]]
        return first_token_argmax(outputs), references

    def xtreme_texts(
        self, task: TaskSpec, predictions: Any, references: Any, label_names: tuple[str, ...]
    ) -> tuple[str, str]:
        """One label name per line."""
        first, second = ("".join(f"{label_names[i]}\n" for i in side) for side in (predictions, references))
        return first, second
