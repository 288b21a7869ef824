"""Scoring a model on an evaluation set: batched prediction, decoding per task type, the task's metric."""

from __future__ import annotations

import json
from pathlib import Path
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


def predict(
    engine: Any,
    head: str,
    data: EvalSet,
    label_names: tuple[str, ...],
    batch_size: int,
    pad_id: int,
    device: torch.device,
) -> tuple[Any, Any]:
    """The model's predictions on ``data`` and the references, in the form the task's metric takes."""
    task = data.task
    outputs = _outputs(engine, head, data.features, batch_size, pad_id, device)
    if task.type in (TaskType.SINGLE_CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        predicted = np.concatenate(outputs).argmax(-1)
        # Class indices, not names: binary F1 (QQP) takes class 1 as the positive class.
        references = [label_names.index(name) for name in data.examples["label"]]
        return [int(i) for i in predicted], references
    if task.type is TaskType.MULTIPLE_CHOICE:
        predicted = np.concatenate(outputs).argmax(-1)
        return [int(i) for i in predicted], list(data.examples["label"])
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
        return predicted_tags, gold
    if task.type is TaskType.SPAN_QA:
        starts = _padded_concat([o[0] for o in outputs])
        ends = _padded_concat([o[1] for o in outputs])
        # SQuAD 2.0 may answer "no answer": without it, every unanswerable question would score 0.
        allow_null = metrics.get_metric(task.metric).null_answer
        predictions = postprocess_qa(data.examples, data.features, starts, ends, allow_null=allow_null)
        return predictions, qa_references(data.examples)
    raise ValueError(f"{task.name}: retrieval tasks are scored by trainers.retrieval, not by a head")


def write_xtreme_files(
    data: EvalSet, predictions: Any, references: Any, label_names: tuple[str, ...], root: Path
) -> tuple[Path, Path]:
    """Predictions and labels as XTREME's files (``<root>/{predictions,labels}/<task>/test-<lang>.*``).

    The formats ``xstilts score`` and XTREME's evaluate.py read: one label per line (classification),
    one tag per line with a blank line between sentences (tagging), SQuAD JSON (QA).
    """
    task = data.task
    qa = task.type is TaskType.SPAN_QA
    paths = tuple(
        root / kind / task.name / f"test-{data.language}.{'json' if qa else 'tsv'}"
        for kind in ("predictions", "labels")
    )
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    if qa:
        qas = [{"id": qid, "answers": [{"text": text} for text in gold]} for qid, gold in references.items()]
        texts: tuple[str, ...] = (
            json.dumps(predictions, ensure_ascii=False),
            json.dumps({"data": [{"paragraphs": [{"qas": qas}]}]}, ensure_ascii=False),
        )
    elif task.type is TaskType.TAGGING:
        texts = tuple(
            "".join("".join(f"{tag}\n" for tag in sentence) + "\n" for sentence in side)
            for side in (predictions, references)
        )
    elif task.type in (TaskType.SINGLE_CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        texts = tuple("".join(f"{label_names[i]}\n" for i in side) for side in (predictions, references))
    else:
        raise ValueError(f"{task.name}: XTREME has no file format for {task.type.value} predictions")
    for path, text in zip(paths, texts, strict=True):
        path.write_text(text, encoding="utf-8")
    return paths[0], paths[1]


def evaluate(
    engine: Any,
    head: str,
    data: EvalSet,
    label_names: tuple[str, ...],
    batch_size: int,
    pad_id: int,
    device: torch.device,
    files: Path | None = None,
) -> dict[str, float]:
    """The task's metric (0-100 scale) on ``data``, with ``head`` of the model; ``files``: also write the
    predictions and labels there as XTREME's files (``write_xtreme_files``)."""
    predictions, references = predict(engine, head, data, label_names, batch_size, pad_id, device)
    if files is not None:
        write_xtreme_files(data, predictions, references, label_names, files)
    return metrics.compute(data.task.metric, predictions, references, data.language)
