"""Token tagging (UD POS, PAN-X NER, CCG supertagging): ``tokens`` and one tag per token."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import torch
from torch import nn

from trainers.task_types._base import (
    IDS,
    IGNORE_INDEX,
    INT,
    MASK,
    TEXTS,
    Batch,
    FeaturePlan,
    TaskTypeBase,
    label_ids,
    label_name,
    rows_of,
)
from trainers.tasks import TaskSpec, TaskType


class TaggingHead(nn.Module):
    """One label per token."""

    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states))


def tokenize_tagging(
    batch: Batch, tokenizer: Any, max_length: int, label_index: Mapping[str, int], where: str
) -> Batch:
    """Sub-tokens of the pre-split words; a word's tag and index on its first sub-token only.

    The first sub-token that is more than SentencePiece's word-boundary marker: XLM-R's tokenizer starts
    many words of scripts without spaces (Chinese, Japanese) and some others with a bare ``▁`` piece
    before the word's characters (``北京大学`` -> ``▁ 北京 大学``). English rarely does, so a model trained
    on English never learns to tag a bare ``▁``, and labelling it dropped zero-shot Chinese POS from 60s to
    under 20 F1 with multilingual-e5-small. Word-level scores are unchanged in kind: one tag per word.
    """
    encoded = tokenizer(
        batch["tokens"],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
    )
    bare = _word_boundary_id(tokenizer)
    all_labels, all_words = [], []
    for row, tags in enumerate(batch["tags"]):
        tag_ids = label_ids(tags, label_index, where)
        word_ids = encoded.word_ids(row)
        ids = encoded["input_ids"][row]
        labels, words = [], []
        tagged = None  # the last word whose tag is placed
        for position, word in enumerate(word_ids):
            # Only one sub-token of a word carries its tag (and maps the prediction back): its first,
            # unless that is a bare boundary marker followed by more of the same word.
            first = word is not None and word != tagged
            if first and ids[position] == bare and position + 1 < len(ids) and word_ids[position + 1] == word:
                first = False
            labels.append(tag_ids[word] if first else IGNORE_INDEX)
            words.append(word if first else -1)
            if first:
                tagged = word
        all_labels.append(labels)
        all_words.append(words)
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "labels": all_labels,
        "word_index": all_words,
    }


WORD_BOUNDARY = "\u2581"
"""SentencePiece's word-boundary marker (``▁``), a piece of its own in XLM-R's and mT5's vocabularies."""


def _word_boundary_id(tokenizer: Any) -> int | None:
    """The id of the bare word-boundary piece, if the tokenizer's vocabulary has one."""
    token_id = tokenizer.convert_tokens_to_ids(WORD_BOUNDARY)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return int(token_id)


class TokenTagging(TaskTypeBase):
    """One tag per word, predicted on the word's first sub-token (past a bare ``▁`` piece)."""

    type = TaskType.TAGGING
    columns = ("tokens", "tags")
    canonical_features = datasets.Features({"tokens": TEXTS, "tags": TEXTS})
    label_roles = frozenset({"tags"})
    names_from_data = "tags"
    needs_label_names = True
    # 2: a word's tag skips a leading bare ``▁`` piece (tokenize_tagging).
    features_version = 2
    miniature = "trainers.data.miniature._tagging"

    def label_converter(self, task: TaskSpec, where: str) -> Callable[[Any], Any]:
        """Each tag of a sequence as a label."""
        names = task.label_names
        return lambda tags: [label_name(tag, names, where) for tag in tags]

    def feature_plan(
        self,
        task: TaskSpec,
        dataset: datasets.Dataset,
        *,
        doc_stride: int,
        training: bool,
        names: Sequence[str],
    ) -> FeaturePlan:
        """Tokenize the words; ``word_index`` maps predictions back to words."""
        schema = datasets.Features(
            {
                "input_ids": IDS,
                "attention_mask": MASK,
                "labels": datasets.List(INT),
                "word_index": datasets.List(datasets.Value("int32")),
            }
        )
        index = {name: i for i, name in enumerate(names)}
        return FeaturePlan(tokenize_tagging, {"label_index": index, "where": task.name}, schema)

    def make_head(self, num_labels: int, hidden: int, dropout: float) -> nn.Module:
        """A linear layer over every token."""
        return TaggingHead(hidden, num_labels, dropout)

    def decode(
        self,
        task: TaskSpec,
        outputs: list[Any],
        examples: Any,
        features: Any,
        label_names: tuple[str, ...],
    ) -> tuple[Any, Any]:
        """Tag sequences, one tag per word; words cut off by truncation are predicted ``O``."""
        gold = list(examples["tags"])
        predicted: list[list[str]] = [["O" if "O" in label_names else label_names[0]] * len(g) for g in gold]
        # One feature row per example: tagging truncates, it does not split examples into windows.
        for example, (logits, words) in enumerate(zip(rows_of(outputs), features["word_index"], strict=True)):
            for position, word in enumerate(words):
                if word >= 0 and position < len(logits):
                    predicted[example][word] = label_names[int(logits[position].argmax())]
        return predicted, gold

    def xtreme_texts(
        self, task: TaskSpec, predictions: Any, references: Any, label_names: tuple[str, ...]
    ) -> tuple[str, str]:
        """One tag per line, a blank line after each sentence."""
        first, second = (
            "".join("".join(f"{tag}\n" for tag in sentence) + "\n" for sentence in side)
            for side in (predictions, references)
        )
        return first, second


TYPE = TokenTagging()
