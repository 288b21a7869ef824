"""Scoring a model on an evaluation set: batched prediction, the task type's decoding, the task's metric."""

from __future__ import annotations

import math
import pickle
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
    engine: Any,
    task: str,
    features: Any,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> list[Any]:
    """Head outputs of this rank's batches, in order: every ``world_size``-th batch from batch ``rank``.

    Every rank runs the same number of forward passes: a rank with a batch fewer runs the last batch (the
    smallest: the cheapest pass) once more and drops its output, because under ZeRO-3 each forward gathers
    the parameters from every rank (a rank that stopped early would leave the others waiting). Round robin rather than contiguous blocks
    keeps the ranks' work even when a file is sorted by length.
    """
    engine.eval()
    inputs = model_inputs(features)
    starts = range(0, len(inputs), batch_size)
    mine = starts[rank::world_size]
    outputs: list[Any] = []
    for index in range(math.ceil(len(starts) / world_size)):
        start = mine[index] if index < len(mine) else starts[-1]
        rows = [inputs[i] for i in range(start, min(start + batch_size, len(inputs)))]
        batch = to_device(collate(rows, pad_id), device)
        batch.pop("labels", None)
        _, out = engine(task, batch)
        if index >= len(mine):
            continue  # the padding pass
        if isinstance(out, tuple):
            outputs.append(tuple(o.float().cpu().numpy() for o in out))
        else:
            outputs.append(out.float().cpu().numpy())
    return outputs


def _gathered(mine: list[Any], rank: int, world_size: int) -> list[Any] | None:
    """Every rank's batch outputs on rank 0, in the order of the batches; ``None`` on the other ranks."""
    shards: list[Any] | None = [None] * world_size if rank == 0 else None
    torch.distributed.gather_object(mine, shards, dst=0)
    if shards is None:
        return None
    count = sum(len(shard) for shard in shards)
    # Batch b was rank (b mod world_size)'s (b div world_size)-th: see _outputs.
    return [shards[b % world_size][b // world_size] for b in range(count)]


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
    *,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, float]:
    """The task's metric (0-100 scale) on ``data``, with ``head`` of the model; ``files``: also write the
    predictions and labels there as XTREME's files (``write_xtreme_files``).

    With ``world_size`` above 1 (a process group of that many ranks, every rank calling with its
    ``rank``), each rank predicts its share of the batches, rank 0 gathers the outputs, decodes them with
    every feature of every example (a QA example's windows may have been predicted on several ranks),
    scores and writes the files; every rank returns rank 0's scores. The scores are those of one rank
    predicting everything: the batches are the same batches.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"evaluate: rank {rank} is not one of {world_size} ranks")
    outputs = _outputs(engine, head, data.features, batch_size, pad_id, device, rank, world_size)
    everything = outputs if world_size == 1 else _gathered(outputs, rank, world_size)
    if world_size == 1:
        return _scored(data, everything, label_names, files)
    scores: dict[str, float] | Exception | None = None
    failure: Exception | None = None
    if everything is not None:
        try:
            scores = _scored(data, everything, label_names, files)
        except Exception as error:  # the other ranks wait for the scores: they raise it too
            failure = error
            scores = error if _picklable(error) else RuntimeError(f"{type(error).__name__}: {error}")
    shared = [scores]
    torch.distributed.broadcast_object_list(shared, src=0)
    if failure is not None:
        raise failure
    if isinstance(shared[0], Exception):
        raise shared[0]
    assert shared[0] is not None  # rank 0 always sends scores or an exception
    return shared[0]


def _scored(
    data: EvalSet, outputs: Any, label_names: tuple[str, ...], files: Path | None
) -> dict[str, float]:
    """Decode every batch's outputs, write the files if asked, and score."""
    predictions, references = type_of(data.task).decode(
        data.task, outputs, data.examples, data.features, label_names
    )
    if files is not None:
        write_xtreme_files(data, predictions, references, label_names, files)
    return metrics.compute(data.task.metric, predictions, references, data.language)


def _picklable(error: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # an exception whose arguments do not survive pickling: sent as its text
        return False
    return True
