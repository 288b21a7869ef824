"""Multiple choice (HellaSwag, Cosmos QA, CommonsenseQA): a context, a question, choices, the right one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import torch
from torch import nn

from trainers.errors import DataError
from trainers.task_types._base import (
    IDS,
    INT,
    MASK,
    TEXT,
    TEXTS,
    Batch,
    Encode,
    FeaturePlan,
    TaskTypeBase,
    first_token_argmax,
)
from trainers.tasks import TaskSpec, TaskType


class ChoiceHead(nn.Module):
    """A score per (context, choice) sequence, on its pooled vector."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(pooled)).squeeze(-1)


def tokenize_multiple_choice(batch: Batch, tokenizer: Any, max_length: int) -> Batch:
    """One (context + question, choice) sequence per choice, grouped per example."""
    firsts = [
        f"{context} {question}".strip()
        for context, question in zip(batch["context"], batch["question"], strict=True)
    ]
    # One (context + question, choice) pair per choice, flattened for one tokenizer call, then regrouped.
    pairs = [
        (first, choice) for first, choices in zip(firsts, batch["choices"], strict=True) for choice in choices
    ]
    encoded = tokenizer(
        [first for first, _ in pairs],
        [choice for _, choice in pairs],
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
    )
    input_ids, attention_mask, start = [], [], 0
    for choices in batch["choices"]:
        end = start + len(choices)
        input_ids.append(encoded["input_ids"][start:end])
        attention_mask.append(encoded["attention_mask"][start:end])
        start = end
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": batch["label"]}


class MultipleChoice(TaskTypeBase):
    """Every choice scored on its own sequence; the loss is over the choices of an example."""

    type = TaskType.MULTIPLE_CHOICE
    columns = ("context", "question", "choices", "label")
    canonical_features = datasets.Features(
        {"context": TEXT, "question": TEXT, "choices": TEXTS, "label": datasets.Value("int64")}
    )
    optional_roles = frozenset({"context", "question"})
    label_roles = frozenset({"label"})
    sentence_level = True
    miniature = "trainers.data.miniature._multiple_choice"

    def label_converter(self, task: TaskSpec, where: str) -> Callable[[Any], Any]:
        """The index of the right choice: the raw label itself, or its position among the label names."""
        names = task.label_names

        def choice_index(raw: Any) -> int:
            if not names:
                if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
                    return int(raw)
                raise DataError(f"{where}: label {raw!r} is not a choice index")
            if str(raw) not in names:
                raise DataError(f"{where}: label {raw!r} out of range; expected one of {', '.join(names)}")
            return names.index(str(raw))

        return choice_index

    def feature_plan(
        self,
        task: TaskSpec,
        dataset: datasets.Dataset,
        *,
        doc_stride: int,
        training: bool,
        names: Sequence[str],
    ) -> FeaturePlan:
        """Tokenize each (context + question, choice) pair: ``[n_choices, length]`` per example."""
        schema = {"input_ids": datasets.List(IDS), "attention_mask": datasets.List(MASK), "labels": INT}
        return FeaturePlan(tokenize_multiple_choice, {}, datasets.Features(schema))

    def make_head(self, num_labels: int, hidden: int, dropout: float) -> nn.Module:
        """A score per choice."""
        return ChoiceHead(hidden, dropout)

    def forward(
        self, encode: Encode, head: nn.Module, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, Any]:
        """Choices flattened into the batch for the encoder, their scores regrouped per example."""
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        n_choices = input_ids.shape[1]
        logits = head(encode(input_ids.flatten(0, 1), mask.flatten(0, 1))).view(-1, n_choices)
        loss = nn.functional.cross_entropy(logits, batch["labels"]) if "labels" in batch else None
        return loss, logits

    def decode(
        self,
        task: TaskSpec,
        outputs: list[Any],
        examples: Any,
        features: Any,
        label_names: tuple[str, ...],
    ) -> tuple[Any, Any]:
        """The chosen and the right choice's index."""
        return first_token_argmax(outputs), list(examples["label"])


TYPE = MultipleChoice()
