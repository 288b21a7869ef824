"""An encoder (any ``AutoModel``, or a T5-family encoder stack) with one head per task, and layer freezing.

The encoder is what moves between phases: the intermediate phase saves it (heads dropped) and
the target phase starts from it with a fresh head. Each head, and its loss, is its task type's
(``trainers/task_types``). A sentence-level head reads one vector per sequence, pooled the encoder's way
(``trainers.encoders.sentence_pooling``): the first token's state, or for the T5 family, which has no
``[CLS]``-like token, the mean of the token states under the attention mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainers.encoders import Pooling, sentence_pooling
from trainers.errors import UserError
from trainers.task_types import TASK_TYPES
from trainers.tasks import TaskSpec, TaskType


class FreezeError(UserError, ValueError):
    """A freeze depth the encoder cannot take."""


class CheckpointingError(UserError, ValueError):
    """``model.gradient_checkpointing`` on an encoder class that cannot recompute its layers."""


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


def make_head(spec: HeadSpec, hidden: int, dropout: float, encoder: nn.Module | None = None) -> nn.Module:
    """A fresh, randomly initialised head for ``spec`` (its type module's); ``encoder``: the encoder it sits
    on, for heads that share its weights (masked LM)."""
    task_type = TASK_TYPES[spec.type]
    if encoder is None:
        return task_type.make_head(spec.num_labels, hidden, dropout)
    return task_type.make_encoder_head(encoder, spec.num_labels, hidden, dropout)


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
        self.pooling: Pooling = sentence_pooling(str(getattr(config, "model_type", "")))
        self.head_specs = {spec.task: spec for spec in heads}
        self.heads = nn.ModuleDict({spec.task: make_head(spec, hidden, dropout, encoder) for spec in heads})

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states [batch, length, hidden]."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def encode_sentences(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector per sequence [batch, hidden]: the first token's state, or the masked mean (T5 family)."""
        states = self.encode(input_ids, attention_mask)
        if self.pooling == "first":
            return states[:, 0]
        mask = attention_mask.to(states.dtype).unsqueeze(-1)
        return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def forward(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, object]:
        """Loss (when labels are in ``batch``) and the head's outputs for ``task``."""
        task_type = TASK_TYPES[self.head_specs[task].type]
        encode = self.encode_sentences if task_type.sentence_level else self.encode
        return task_type.forward(encode, self.heads[task], batch)


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


def checkpoint_activations(encoder: Any) -> None:
    """Switch on gradient (activation) checkpointing of every layer of ``encoder`` (a ``PreTrainedModel``).

    Non-reentrant (``use_reentrant=False``): its backward follows whatever needs a gradient, so a layer over
    frozen bottom layers still gets its weights' gradients without the input embeddings requiring one.
    transformers also makes the input embeddings require a gradient (``enable_input_require_grads``, for the
    reentrant variant); that would make frozen layers run a backward they do not need, so it is undone.
    """
    if not getattr(encoder, "supports_gradient_checkpointing", False):
        raise CheckpointingError(
            f"model.gradient_checkpointing: {type(encoder).__name__} cannot checkpoint its layers; set it to false"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(encoder, "activation_checkpointing_enable"):  # transformers >= 5 (the old name warns)
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if getattr(encoder, "_require_grads_hook", None) is not None:
        encoder.disable_input_require_grads()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, whole even where ZeRO-3 holds a parameter partitioned."""
    total = sum(parameter_numel(p) for p in model.parameters())
    trainable = sum(parameter_numel(p) for p in model.parameters() if p.requires_grad)
    return trainable, total


def parameter_numel(parameter: nn.Parameter) -> int:
    """Elements of the whole parameter: a ZeRO-3 partitioned one holds an empty tensor and its size in ``ds_numel``."""
    return int(getattr(parameter, "ds_numel", parameter.numel()))
