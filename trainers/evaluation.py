"""Scoring a model on an evaluation set: batched prediction, the task type's decoding, the task's metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers import metrics
from trainers._loop import to_device
from trainers.data import collate, model_inputs
from trainers.prepare import EvalSet
from trainers.task_types import type_of


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
    outputs = _outputs(engine, head, data.features, batch_size, pad_id, device)
    return type_of(data.task).decode(data.task, outputs, data.examples, data.features, label_names)


def write_xtreme_files(
    data: EvalSet, predictions: Any, references: Any, label_names: tuple[str, ...], root: Path
) -> tuple[Path, Path]:
    """Predictions and labels as XTREME's files (``<root>/{predictions,labels}/<task>/test-<lang>.*``).

    The formats ``xstilts score`` and XTREME's evaluate.py read (the task type's ``xtreme_texts``): one
    label per line (classification), one tag per line with a blank line between sentences (tagging),
    SQuAD JSON (QA).
    """
    task = data.task
    task_type = type_of(task)
    texts = task_type.xtreme_texts(task, predictions, references, label_names)
    paths = tuple(
        root / kind / task.name / f"test-{data.language}.{task_type.xtreme_suffix}"
        for kind in ("predictions", "labels")
    )
    for path, text in zip(paths, texts, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
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
