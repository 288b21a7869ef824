"""Masked language modelling (continued multilingual MLM, the paper's baseline): ``text`` alone, no labels.

An intermediate-only type (``trainers.tasks.INTERMEDIATE_ONLY_TYPES``): it trains the encoder further and has
no XTREME metric. Masking is BERT's: ``round(15%)`` of a row's maskable tokens (at least one) are predicted;
of those, 80% read the mask token, 10% a random token and 10% are kept (``mask_tokens``).

- Training features hold the mask token at every maskable position of ``input_ids`` and the original token
  there in ``labels``; the head draws, at every step, which of them are predicted and how, from its own
  generator, seeded when the head is made (``build_model`` seeds torch with the config's seed first): a
  fresh masking each epoch, the same for the same seed. The loss is computed on the drawn positions alone
  (a fixed number per batch, gathered without a host-device synchronisation), not over the vocabulary at
  every position.
- Evaluation features are masked once, by the same function with a generator seeded from each row's tokens,
  so every run scores the same dev set; ``labels`` holds the originals of the masked positions, which
  ``decode`` reads (the evaluation loop drops labels from the batch). The metric is masked-token accuracy
  (``accuracy_tokens``).

transformers' ``DataCollatorForLanguageModeling`` is not used: it draws a Bernoulli count per row (the loss
then needs logits over the whole vocabulary at every position, or a synchronisation to gather them), needs
the tokenizer's ``mask_token`` (the T5 family has none: its first sentinel stands in) and runs where the
batch is collated, which is shared by every type.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn

from trainers.encoders import T5_ENCODER_CLASSES
from trainers.errors import DataError
from trainers.task_types._base import (
    IDS,
    IGNORE_INDEX,
    MASK,
    TEXT,
    Batch,
    Encode,
    FeaturePlan,
    TaskTypeBase,
    rows_of,
)
from trainers.tasks import TaskSpec, TaskType

MASK_PROBABILITY = 0.15
"""The share of a row's maskable tokens that are predicted (BERT)."""
REPLACE_WITH_MASK = 0.8
"""Of the predicted tokens, the share that read the mask token; as many again read a random token (0.1)
and the rest (0.1) are kept."""
REPLACE_WITH_RANDOM = 0.1
EVAL_MASK_SEED = 20_201_011
"""Seeds the one masking of evaluation rows (with each row's tokens), the same in every run."""
T5_MASK_TOKEN = "<extra_id_0>"
"""The mask token of tokenizers that have none (the T5 family): its first span-corruption sentinel."""


def mask_token_id(tokenizer: Any, where: str) -> int:
    """The id the masked positions read: the tokenizer's mask token, else T5's first sentinel."""
    if tokenizer.mask_token_id is not None:
        return int(tokenizer.mask_token_id)
    sentinel = tokenizer.convert_tokens_to_ids(T5_MASK_TOKEN)
    if sentinel is not None and sentinel != tokenizer.unk_token_id:
        return int(sentinel)
    raise DataError(f"{where}: the tokenizer has no mask token (nor {T5_MASK_TOKEN}) for masked LM")


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: torch.Tensor | int,
    vocab_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT's masking of a batch ``[rows, length]``: (masked input ids, positions ``[rows, k]``, their gold ids
    with ``IGNORE_INDEX`` where a row predicts fewer than ``k`` tokens).

    ``maskable`` marks the positions that may be predicted (not padding nor special tokens); ``mask_id`` is
    the id a masked position reads, a scalar or one per position. Random numbers come from ``generator``
    (on the CPU) and then move to the batch's device, so nothing waits for the device.
    """
    rows, length = input_ids.shape
    device = input_ids.device
    k = max(1, math.ceil(MASK_PROBABILITY * length))  # >= round(15%) of any row: no count is read back
    keys = torch.rand((rows, length), generator=generator).to(device)
    choice = torch.rand((rows, k), generator=generator).to(device)
    random_ids = torch.randint(vocab_size, (rows, k), generator=generator).to(device)
    # The maskable positions come first, in a random order; each row predicts the first round(15%).
    positions = keys.masked_fill(~maskable, 2.0).argsort(dim=1)[:, :k]
    count = maskable.sum(dim=1)
    predicted = torch.clamp(torch.round(count * MASK_PROBABILITY), min=1).minimum(count)
    valid = torch.arange(k, device=device)[None, :] < predicted[:, None]
    original = input_ids.gather(1, positions)
    masked = torch.as_tensor(mask_id, device=device).expand_as(input_ids).gather(1, positions)
    replaced = torch.where(
        choice < REPLACE_WITH_MASK,
        masked,
        torch.where(choice < REPLACE_WITH_MASK + REPLACE_WITH_RANDOM, random_ids, original),
    )
    inputs = input_ids.scatter(1, positions, torch.where(valid, replaced, original))
    return inputs, positions, original.masked_fill(~valid, IGNORE_INDEX)


def tokenize_masked_lm(batch: Batch, tokenizer: Any, max_length: int, training: bool, where: str) -> Batch:
    """Training: the mask token at every maskable position, the originals in ``labels``. Evaluation: masked
    once (``mask_tokens``, seeded by each row's tokens), the originals of the masked positions in ``labels``."""
    mask_id = mask_token_id(tokenizer, where)
    encoded = tokenizer(
        batch["text"],
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
        return_special_tokens_mask=True,
    )
    all_ids, all_labels = [], []
    for ids, special in zip(encoded["input_ids"], encoded["special_tokens_mask"], strict=True):
        if training:
            all_ids.append([token if flag else mask_id for token, flag in zip(ids, special, strict=True)])
            all_labels.append(
                [IGNORE_INDEX if flag else token for token, flag in zip(ids, special, strict=True)]
            )
            continue
        row = torch.tensor([ids])
        maskable = torch.tensor([special]) == 0
        generator = torch.Generator().manual_seed(EVAL_MASK_SEED ^ zlib.crc32(np.asarray(ids).tobytes()))
        inputs, positions, gold = mask_tokens(row, maskable, mask_id, len(tokenizer), generator)
        labels = torch.full_like(row, IGNORE_INDEX).scatter(1, positions, gold)
        # A row with no maskable token (empty text) predicts nothing: its gold stays IGNORE_INDEX.
        all_ids.append(inputs[0].tolist())
        all_labels.append(labels[0].tolist())
    return {"input_ids": all_ids, "attention_mask": encoded["attention_mask"], "labels": all_labels}


class MaskedLMHead(nn.Module):
    """BERT's/XLM-R's LM head: dense, GELU, layer norm, then the vocabulary, tied to the input embeddings where
    the encoder's config ties them (every T5-family config in transformers 5: then scaled as T5's tied head).
    Holds the generator that draws each training step's masking."""

    def __init__(self, embeddings: nn.Embedding, hidden: int, tie: bool, scale: float = 1.0) -> None:
        super().__init__()
        # Under ZeRO-3 partitioned loading the weight holds an empty partition; its whole shape is ds_shape.
        vocab_size, width = getattr(embeddings.weight, "ds_shape", embeddings.weight.shape)
        self.vocab_size = int(vocab_size)
        self.scale = scale
        """Multiplies the states the vocabulary reads (T5's tied head: ``d_model ** -0.5``)."""
        self.dense = nn.Linear(hidden, width)
        self.norm = nn.LayerNorm(width)
        self.decoder = nn.Linear(width, self.vocab_size, bias=False)
        if tie:
            self.decoder.weight = embeddings.weight
        self.bias = nn.Parameter(torch.zeros(self.vocab_size))
        # Drawn from torch's generator, which build_model seeds with the config's seed before the heads.
        seed = int(torch.randint(2**62, (1,)).item())
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(nn.functional.gelu(self.dense(states))) * self.scale) + self.bias


class MaskedLM(TaskTypeBase):
    """Predict masked tokens of plain text; the encoder is what it trains, its head is dropped after."""

    type = TaskType.MASKED_LM
    columns = ("text",)
    canonical_features = datasets.Features({"text": TEXT})
    miniature = "trainers.data.miniature._masked_lm"

    def feature_plan(
        self,
        task: TaskSpec,
        dataset: datasets.Dataset,
        *,
        doc_stride: int,
        training: bool,
        names: Sequence[str],
    ) -> FeaturePlan:
        """Tokenize the text; training rows are masked by the head, evaluation rows here."""
        schema = datasets.Features({"input_ids": IDS, "attention_mask": MASK, "labels": IDS})
        return FeaturePlan(tokenize_masked_lm, {"training": training, "where": task.name}, schema)

    def make_encoder_head(
        self, encoder: nn.Module, num_labels: int, hidden: int, dropout: float
    ) -> nn.Module:
        """An LM head over ``encoder``'s vocabulary, tied to its input embeddings where its config ties them."""
        model: Any = encoder  # a transformers PreTrainedModel
        embeddings = model.get_input_embeddings()
        tie = bool(getattr(model.config, "tie_word_embeddings", True))
        # T5's embeddings are initialised at unit scale (BERT's at 0.02): its tied LM head scales the states
        # by d_model ** -0.5 (T5ForConditionalGeneration), or the first logits are sqrt(d_model) too large.
        t5_family = str(getattr(model.config, "model_type", "")) in T5_ENCODER_CLASSES
        return MaskedLMHead(embeddings, hidden, tie, hidden**-0.5 if tie and t5_family else 1.0)

    def forward(
        self, encode: Encode, head: nn.Module, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, Any]:
        """Training: mask (``mask_tokens``), loss on the masked positions. Without labels: the most likely
        token at every position (``decode`` keeps the masked ones)."""
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        if "labels" not in batch:
            states = encode(input_ids, attention_mask)
            # Row by row: logits over a large vocabulary at every position of a batch need not fit at once.
            return None, torch.stack([head(row).argmax(-1) for row in states])
        labels = batch["labels"]
        if not head.training:  # evaluation rows, masked already: the loss over their masked positions
            logits = head(encode(input_ids, attention_mask))
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
            )
            return loss, logits.argmax(-1)
        # Training rows hold the mask token wherever labels holds a token: restore, then draw the masking.
        assert isinstance(head, MaskedLMHead)
        maskable = labels != IGNORE_INDEX
        originals = torch.where(maskable, labels, input_ids)
        inputs, positions, gold = mask_tokens(originals, maskable, input_ids, head.vocab_size, head.generator)
        states = encode(inputs, attention_mask)
        picked = states.gather(1, positions[..., None].expand(-1, -1, states.shape[-1]))
        logits = head(picked)
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=IGNORE_INDEX
        )
        return loss, logits

    def decode(
        self,
        task: TaskSpec,
        outputs: list[Any],
        examples: Any,
        features: Any,
        label_names: tuple[str, ...],
    ) -> tuple[Any, Any]:
        """The predicted and the original token ids at each row's masked positions."""
        predictions, references = [], []
        for predicted, labels in zip(rows_of(outputs), features["labels"], strict=True):
            positions = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
            predictions.append([int(predicted[i]) for i in positions])
            references.append([int(labels[i]) for i in positions])
        return predictions, references


TYPE = MaskedLM()
