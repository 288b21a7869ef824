"""Scoring a model on an evaluation set: batched prediction, decoding per task type, the task's metric."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainers import metrics
from trainers._loop import to_device
from trainers.data import collate, model_inputs, postprocess_qa, qa_references
from trainers.prepare import EvalSet
from trainers.tasks import TaskType


@torch.no_grad()
def _outputs(
    engine: Any, task: str, features: Any, batch_size: int, pad_id: int, device: torch.device
) -> list[Any]:
    """Head outputs for every feature row, in order (every rank runs the same batches: ZeRO-3 needs it)."""
    engine.eval()
    inputs = model_inputs(features)
    outputs: list[Any] = []
    for start in range(0, len(inputs), batch_size):
        rows = [inputs[i] for i in range(start, min(start + batch_size, len(inputs)))]
        batch = to_device(collate(rows, pad_id), device)
        batch.pop("labels", None)
        _, out = engine(task, batch)
        if isinstance(out, tuple):
            outputs.append(tuple(o.float().cpu().numpy() for o in out))
        else:
            outputs.append(out.float().cpu().numpy())
    return outputs


def _padded_concat(chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Rows of per-batch arrays whose length dimension differs between batches."""
    return [row for chunk in chunks for row in chunk]


def evaluate(
    engine: Any,
    head: str,
    data: EvalSet,
    label_names: tuple[str, ...],
    batch_size: int,
    pad_id: int,
    device: torch.device,
) -> dict[str, float]:
    """The task's metric (0-100 scale) on ``data``, with ``head`` of the model."""
    task = data.task
    outputs = _outputs(engine, head, data.features, batch_size, pad_id, device)
    if task.type in (TaskType.SINGLE_CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        predicted = np.concatenate(outputs).argmax(-1)
        # Class indices, not names: binary F1 (QQP) takes class 1 as the positive class.
        references = [label_names.index(name) for name in data.examples["label"]]
        return metrics.compute(task.metric, [int(i) for i in predicted], references)
    if task.type is TaskType.MULTIPLE_CHOICE:
        predicted = np.concatenate(outputs).argmax(-1)
        return metrics.compute(task.metric, [int(i) for i in predicted], list(data.examples["label"]))
    if task.type is TaskType.TAGGING:
        rows = _padded_concat(outputs)
        word_index = data.features["word_index"]
        gold = list(data.examples["tags"])
        predicted_tags: list[list[str]] = [
            ["O" if "O" in label_names else label_names[0]] * len(g) for g in gold
        ]
        example_of = data.features["example_index"] if "example_index" in data.features.column_names else None
        for row_number, (logits, words) in enumerate(zip(rows, word_index, strict=True)):
            example = example_of[row_number] if example_of is not None else row_number
            for position, word in enumerate(words):
                if word >= 0 and position < len(logits):
                    predicted_tags[example][word] = label_names[int(logits[position].argmax())]
        return metrics.compute(task.metric, predicted_tags, gold)
    if task.type is TaskType.SPAN_QA:
        starts = _padded_concat([o[0] for o in outputs])
        ends = _padded_concat([o[1] for o in outputs])
        # SQuAD 2.0 may answer "no answer": without it, every unanswerable question would score 0.
        allow_null = metrics.get_metric(task.metric).null_answer
        predictions = postprocess_qa(data.examples, data.features, starts, ends, allow_null=allow_null)
        return metrics.compute(task.metric, predictions, qa_references(data.examples), data.language)
    raise ValueError(f"{task.name}: retrieval tasks are scored by trainers.retrieval, not by a head")
