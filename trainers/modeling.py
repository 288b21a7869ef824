"""An encoder (any ``AutoModel``) with one head per task, and layer freezing.

The encoder is what moves between phases: the intermediate phase saves it (heads dropped) and
the target phase starts from it with a fresh head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainers.errors import UserError
from trainers.tasks import TaskSpec, TaskType


class FreezeError(UserError, ValueError):
    """A freeze depth the encoder cannot take."""


class ClassificationHead(nn.Module):
    """Sentence(-pair) classification on the first token (XLM-R's head: dense, tanh, projection)."""

    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        x = self.dropout(states[:, 0])
        return self.out(self.dropout(torch.tanh(self.dense(x))))


class TaggingHead(nn.Module):
    """One label per token."""

    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states))


class SpanHead(nn.Module):
    """Start and end logits per token (extractive QA)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden, 2)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.out(states).unbind(dim=-1)
        return start, end


class ChoiceHead(nn.Module):
    """A score per (context, choice) sequence, on its first token."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states[:, 0])).squeeze(-1)


@dataclass(frozen=True)
class HeadSpec:
    """What a head needs to know about its task."""

    task: str
    """Registry name (the head's key)."""
    type: TaskType
    """Decides the head class and the loss."""
    num_labels: int = 0
    """Classes or tags (classification and tagging)."""

    @classmethod
    def of(cls, task: TaskSpec, label_names: Sequence[str] = ()) -> HeadSpec:
        """The head spec of a registry task, with labels read from data where the registry has none."""
        return cls(task.name, task.type, len(label_names or task.label_names))


def make_head(spec: HeadSpec, hidden: int, dropout: float) -> nn.Module:
    """A fresh, randomly initialised head for ``spec``."""
    if spec.type in (TaskType.SINGLE_CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        return ClassificationHead(hidden, spec.num_labels, dropout)
    if spec.type is TaskType.TAGGING:
        return TaggingHead(hidden, spec.num_labels, dropout)
    if spec.type is TaskType.SPAN_QA:
        return SpanHead(hidden)
    if spec.type is TaskType.MULTIPLE_CHOICE:
        return ChoiceHead(hidden, dropout)
    raise ValueError(f"task type {spec.type} has no trainable head")


class TransferModel(nn.Module):
    """The encoder plus a ``ModuleDict`` of task heads; ``forward(task, batch)`` returns (loss, outputs)."""

    def __init__(self, encoder: nn.Module, heads: Sequence[HeadSpec]) -> None:
        super().__init__()
        self.encoder = encoder
        config: Any = encoder.config
        hidden = int(getattr(config, "hidden_size", None) or config.d_model)
        dropout = float(
            getattr(config, "hidden_dropout_prob", None) or getattr(config, "dropout_rate", None) or 0.1
        )
        self.head_specs = {spec.task: spec for spec in heads}
        self.heads = nn.ModuleDict({spec.task: make_head(spec, hidden, dropout) for spec in heads})

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states [batch, length, hidden]."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, object]:
        """Loss (when labels are in ``batch``) and the head's outputs for ``task``."""
        spec = self.head_specs[task]
        head = self.heads[task]
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        if spec.type is TaskType.MULTIPLE_CHOICE:
            n_choices = input_ids.shape[1]
            states = self.encode(input_ids.flatten(0, 1), mask.flatten(0, 1))
            logits = head(states).view(-1, n_choices)
            loss = nn.functional.cross_entropy(logits, batch["labels"]) if "labels" in batch else None
            return loss, logits
        states = self.encode(input_ids, mask)
        if spec.type is TaskType.SPAN_QA:
            start, end = head(states)
            loss = None
            if "start_positions" in batch:
                loss = (
                    nn.functional.cross_entropy(start, batch["start_positions"])
                    + nn.functional.cross_entropy(end, batch["end_positions"])
                ) / 2
            return loss, (start, end)
        logits = head(states)
        loss = None
        if "labels" in batch:
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100
            )
        return loss, logits


def encoder_layers(encoder: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """The embedding module and the stack of transformer layers of a BERT/XLM-R/MiniLM/mT5-style encoder."""
    for embeddings_path, layers_path in (
        ("embeddings", "encoder.layer"),  # BERT, RoBERTa, XLM-R, MiniLM, ELECTRA
        ("embeddings", "transformer.layer"),  # DistilBERT
        ("shared", "encoder.block"),  # T5/mT5 encoder
    ):
        embeddings = _get(encoder, embeddings_path)
        layers = _get(encoder, layers_path)
        if embeddings is not None and isinstance(layers, nn.ModuleList):
            return embeddings, layers
    raise FreezeError(f"cannot find the embeddings and layer stack of {type(encoder).__name__} to freeze")


def _get(module: nn.Module, dotted: str) -> nn.Module | None:
    for part in dotted.split("."):
        module = getattr(module, part, None)  # type: ignore[assignment]
        if module is None:
            return None
    return module


def freeze_bottom(encoder: nn.Module, depth: int) -> None:
    """Freeze the embeddings and the bottom ``depth`` layers (``depth`` 0 freezes nothing)."""
    embeddings, layers = encoder_layers(encoder)
    if not 0 <= depth <= len(layers):
        raise FreezeError(f"freeze_depth must be in [0, {len(layers)}] for this encoder, got {depth}")
    if depth == 0:
        return
    for module in (embeddings, *layers[:depth]):
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
