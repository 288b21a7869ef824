"""Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): the answer is a span of the context.

Follows the Hugging Face ``run_qa`` recipe: sliding windows over the context, token start/end labels for
training, and ``example_id`` + ``offset_mapping`` kept on evaluation features to map logits back to text.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np
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
    rows_of,
)
from trainers.tasks import TaskSpec, TaskType


class SpanHead(nn.Module):
    """Start and end logits per token (extractive QA)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden, 2)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.out(states).unbind(dim=-1)
        return start, end


# -- features ---------------------------------------------------------------------------------------


def tokenize_qa(batch: Batch, tokenizer: Any, max_length: int, doc_stride: int, training: bool) -> Batch:
    """Windows of (question, context); answer token positions (training) or offsets (evaluation)."""
    questions = clip_questions([q.lstrip() for q in batch["question"]], tokenizer, max_length, doc_stride)
    encoded = tokenizer(
        questions,
        batch["context"],
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=False,
    )
    samples = encoded["overflow_to_sample_mapping"]
    out: Batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    if training:
        positions = [
            answer_tokens(encoded["offset_mapping"][i], encoded.sequence_ids(i), batch["answers"][sample])
            for i, sample in enumerate(samples)
        ]
        out["start_positions"] = [start for start, _ in positions]
        out["end_positions"] = [end for _, end in positions]
    else:
        out["example_id"] = [batch["id"][sample] for sample in samples]
        out["offset_mapping"] = [
            [
                list(offset) if sequence == 1 else None
                for offset, sequence in zip(offsets, encoded.sequence_ids(i), strict=True)
            ]
            for i, offsets in enumerate(encoded["offset_mapping"])
        ]
    return out


def answer_tokens(
    offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None], answers: Mapping[str, list[Any]]
) -> tuple[int, int]:
    """Token start/end of the first answer inside this window, or (0, 0) (CLS) when it is not inside."""
    if not answers["text"] or 1 not in sequence_ids:
        return 0, 0
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    context_start = sequence_ids.index(1)
    context_end = len(sequence_ids) - 1 - list(reversed(sequence_ids)).index(1)
    if offsets[context_start][0] > start_char or offsets[context_end][1] < end_char:
        return 0, 0
    start = context_start
    while start <= context_end and offsets[start][0] <= start_char:
        start += 1
    end = context_end
    while end >= context_start and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def clip_questions(questions: list[str], tokenizer: Any, max_length: int, doc_stride: int) -> list[str]:
    """Shorten over-long questions so every window keeps more context tokens than the stride.

    Without this the tokenizer refuses the whole batch ("second sequence not long enough").
    """
    limit = max_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride - 1
    if limit < 1:
        raise DataError(
            f"doc_stride {doc_stride} leaves no room for a question within max_length {max_length}"
        )
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    clipped = list(questions)
    for i, offsets in enumerate(encoded["offset_mapping"]):
        keep, length = limit, len(offsets)
        while length > limit:
            # Cut after the last kept token; re-tokenizing the cut text may split it differently: recheck.
            clipped[i] = questions[i][: offsets[keep - 1][1]] if keep > 0 else ""
            length = len(tokenizer(clipped[i], add_special_tokens=False)["input_ids"])
            keep -= 1
    return clipped


# -- post-processing --------------------------------------------------------------------------------


def postprocess_qa(
    examples: Iterable[Mapping[str, Any]],
    features: Any,
    start_logits: Sequence[Any] | np.ndarray | torch.Tensor,
    end_logits: Sequence[Any] | np.ndarray | torch.Tensor,
    n_best: int = 20,
    max_answer_length: int = 30,
    *,
    allow_null: bool = False,
) -> dict[str, str]:
    """Example id -> answer text: the best-scoring valid span over all of the example's windows.

    ``features`` are the evaluation features (``example_id``, ``offset_mapping``) in the order of the
    logits; logits may be padded past a feature's length. ``allow_null`` (SQuAD 2.0) answers "" when
    the CLS score beats every span.
    """
    windows: dict[str, list[int]] = defaultdict(list)
    for index, example_id in enumerate(features["example_id"]):
        windows[example_id].append(index)
    all_offsets = features["offset_mapping"]
    predictions: dict[str, str] = {}
    for example in examples:
        best_score, best_text, null_score = -np.inf, "", np.inf
        for index in windows.get(example["id"], []):
            offsets = all_offsets[index]
            length = min(len(offsets), len(start_logits[index]), len(end_logits[index]))
            starts = np.asarray(start_logits[index], dtype=np.float64)[:length]
            ends = np.asarray(end_logits[index], dtype=np.float64)[:length]
            null_score = min(null_score, starts[0] + ends[0])
            best_ends = np.argsort(ends)[::-1][:n_best]
            for start in np.argsort(starts)[::-1][:n_best]:
                for end in best_ends:
                    if offsets[start] is None or offsets[end] is None:
                        continue  # outside the context (question, special tokens)
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    score = starts[start] + ends[end]
                    if score > best_score:
                        best_score = score
                        best_text = example["context"][offsets[start][0] : offsets[end][1]]
        predictions[example["id"]] = "" if allow_null and null_score > best_score else best_text
    return predictions


def qa_references(examples: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Example id -> the gold answer texts (empty for unanswerable questions)."""
    return {example["id"]: list(example["answers"]["text"]) for example in examples}


# -- the type -----------------------------------------------------------------------------------------


class ExtractiveQA(TaskTypeBase):
    """Start and end logits per token; answers read back from the context through the offsets."""

    type = TaskType.SPAN_QA
    columns = ("id", "context", "question", "answers")
    canonical_features = datasets.Features(
        {
            "id": TEXT,
            "context": TEXT,
            "question": TEXT,
            "answers": {"text": TEXTS, "answer_start": datasets.List(datasets.Value("int32"))},
        }
    )
    uses_doc_stride = True
    xtreme_suffix = "json"
    miniature = "trainers.data.miniature._span_qa"

    def feature_plan(
        self,
        task: TaskSpec,
        dataset: datasets.Dataset,
        *,
        doc_stride: int,
        training: bool,
        names: Sequence[str],
    ) -> FeaturePlan:
        """Sliding windows; answer positions for training, ``example_id`` and offsets for evaluation."""
        if training:
            schema = {"input_ids": IDS, "attention_mask": MASK, "start_positions": INT, "end_positions": INT}
        else:
            schema = {
                "input_ids": IDS,
                "attention_mask": MASK,
                "example_id": TEXT,
                "offset_mapping": datasets.List(datasets.List(INT)),
            }
        kwargs = {"doc_stride": doc_stride, "training": training}
        return FeaturePlan(tokenize_qa, kwargs, datasets.Features(schema))

    def make_head(self, num_labels: int, hidden: int, dropout: float) -> nn.Module:
        """Start and end logits."""
        return SpanHead(hidden)

    def forward(
        self, encode: Encode, head: nn.Module, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, Any]:
        """The mean of the start and end cross-entropies."""
        start, end = head(encode(batch["input_ids"], batch["attention_mask"]))
        loss = None
        if "start_positions" in batch:
            loss = (
                nn.functional.cross_entropy(start, batch["start_positions"])
                + nn.functional.cross_entropy(end, batch["end_positions"])
            ) / 2
        return loss, (start, end)

    def decode(
        self,
        task: TaskSpec,
        outputs: list[Any],
        examples: Any,
        features: Any,
        label_names: tuple[str, ...],
    ) -> tuple[Any, Any]:
        """Answer text per example id, and the gold answers."""
        from trainers import metrics  # lazy: scikit-learn and friends load only to score

        starts = rows_of([o[0] for o in outputs])
        ends = rows_of([o[1] for o in outputs])
        # SQuAD 2.0 may answer "no answer": without it, every unanswerable question would score 0.
        allow_null = metrics.get_metric(task.metric).null_answer
        predictions = postprocess_qa(examples, features, starts, ends, allow_null=allow_null)
        return predictions, qa_references(examples)

    def xtreme_texts(
        self, task: TaskSpec, predictions: Any, references: Any, label_names: tuple[str, ...]
    ) -> tuple[str, str]:
        """Predictions as ``{id: text}`` JSON, labels as SQuAD JSON."""
        qas = [{"id": qid, "answers": [{"text": text} for text in gold]} for qid, gold in references.items()]
        return (
            json.dumps(predictions, ensure_ascii=False),
            json.dumps({"data": [{"paragraphs": [{"qas": qas}]}]}, ensure_ascii=False),
        )


TYPE = ExtractiveQA()
