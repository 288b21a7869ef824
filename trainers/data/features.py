"""Canonical rows -> model features: tokenization per task type, a disk cache, collation, QA answers.

The features of each task type are listed in docs/CONTRACTS.md. Extractive QA follows the Hugging Face
``run_qa`` recipe: sliding windows over the context, token start/end labels for training, and
``example_id`` + ``offset_mapping`` kept on evaluation features to map logits back to answer text.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from trainers.config import stable_hash
from trainers.data.loading import DataError
from trainers.progress import stage
from trainers.tasks import CANONICAL_COLUMNS, TaskSpec, TaskType

ANNOUNCED_ROWS = 10_000
"""Tokenizing a split this large (seconds to minutes) says so; smaller ones take well under a second."""

# Bump when the features of some task type change, so that old caches are not reused.
FEATURES_VERSION = 1
# What the model consumes; everything else (example_id, offset_mapping, word_index) is post-processing.
MODEL_INPUT_COLUMNS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "labels",
    "start_positions",
    "end_positions",
)
IGNORE_INDEX = -100

_IDS = datasets.List(datasets.Value("int32"))
_MASK = datasets.List(datasets.Value("int8"))
_INT = datasets.Value("int64")

Batch = dict[str, list[Any]]


# -- featurize ----------------------------------------------------------------------------------


def featurize(
    task: TaskSpec,
    dataset: datasets.Dataset,
    tokenizer: Any,
    *,
    max_length: int,
    doc_stride: int,
    training: bool,
    label_names: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
) -> datasets.Dataset:
    """Tokenize a canonical split into the task type's features, cached on disk when ``cache_dir`` is set.

    Retrieval datasets must hold one text column (select ``source`` or ``target`` first).
    """
    names = tuple(label_names if label_names is not None else task.label_names)
    _check_dataset(task, dataset, tokenizer, names)
    key = stable_hash(
        {
            "version": FEATURES_VERSION,
            "tokenizer": _tokenizer_identity(tokenizer),
            "task": task.name,
            "type": str(task.type),
            "cache_key": cache_key,
            "max_length": max_length,
            "doc_stride": doc_stride if task.type is TaskType.SPAN_QA else None,
            "training": training,
            "label_names": names,
            "dataset": dataset._fingerprint,
        }
    )
    if cache_dir is None:
        return _featurize_uncached(task, dataset, tokenizer, max_length, doc_stride, training, names, key)
    path = Path(cache_dir).expanduser() / _cache_name(task, cache_key, key)
    # The directory appears only by an atomic rename, so its presence means a complete cache.
    if path.is_dir():
        return datasets.load_from_disk(str(path))
    what = f"tokenizing {task.name} {cache_key or ''} ({len(dataset)} rows) into the feature cache"
    with stage(what) if len(dataset) >= ANNOUNCED_ROWS else contextlib.nullcontext():
        features = _featurize_uncached(
            task, dataset, tokenizer, max_length, doc_stride, training, names, key, keep_in_memory=True
        )
        return _save_atomically(features, path)


def featurize_texts(texts: Iterable[str], tokenizer: Any, max_length: int) -> datasets.Dataset:
    """``input_ids``/``attention_mask`` for each text (retrieval sentences), truncated to ``max_length``."""
    dataset = datasets.Dataset.from_dict({"text": list(texts)}, features=datasets.Features({"text": _text()}))
    return dataset.map(
        _tokenize_texts,
        batched=True,
        remove_columns=["text"],
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "column": "text"},
        features=datasets.Features({"input_ids": _IDS, "attention_mask": _MASK}),
        keep_in_memory=True,
        new_fingerprint=stable_hash([dataset._fingerprint, _tokenizer_identity(tokenizer), max_length]),
        desc="tokenize texts",
    )


def _tokenizer_identity(tokenizer: Any) -> list[Any]:
    """What distinguishes one tokenizer from another in cache keys: its name (or vocabulary) and size."""
    identity = [type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer)]
    if not tokenizer.name_or_path:
        # A tokenizer built in memory has no name: key on its vocabulary instead.
        identity.append(stable_hash(sorted(tokenizer.get_vocab().items())))
    return identity


def _featurize_uncached(
    task: TaskSpec,
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_length: int,
    doc_stride: int,
    training: bool,
    names: tuple[str, ...],
    fingerprint: str,
    keep_in_memory: bool = False,
) -> datasets.Dataset:
    """Run the task type's tokenizer function over the dataset (no cache lookup)."""
    function, kwargs, schema = _plan(task, dataset, tokenizer, max_length, doc_stride, training, names)
    return dataset.map(
        function,
        batched=True,
        remove_columns=dataset.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, **kwargs},
        features=schema,
        keep_in_memory=keep_in_memory,
        # Our own fingerprint: hashing a large tokenizer for datasets' default one is slow.
        new_fingerprint=fingerprint,
        desc=f"featurize {task.name}",
    )


def _plan(
    task: TaskSpec,
    dataset: datasets.Dataset,
    tokenizer: Any,
    max_length: int,
    doc_stride: int,
    training: bool,
    names: tuple[str, ...],
) -> tuple[Callable[..., Batch], dict[str, Any], datasets.Features]:
    """The batch function, its extra arguments and the output schema for the task type."""
    index = {name: i for i, name in enumerate(names)}
    if task.type in (TaskType.SINGLE_CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        schema = {"input_ids": _IDS, "attention_mask": _MASK, "labels": _INT}
        return _tokenize_classification, {"label_index": index, "where": task.name}, datasets.Features(schema)
    if task.type is TaskType.TAGGING:
        schema = {
            "input_ids": _IDS,
            "attention_mask": _MASK,
            "labels": datasets.List(_INT),
            "word_index": datasets.List(datasets.Value("int32")),
        }
        return _tokenize_tagging, {"label_index": index, "where": task.name}, datasets.Features(schema)
    if task.type is TaskType.MULTIPLE_CHOICE:
        schema = {"input_ids": datasets.List(_IDS), "attention_mask": datasets.List(_MASK), "labels": _INT}
        return _tokenize_multiple_choice, {}, datasets.Features(schema)
    if task.type is TaskType.SPAN_QA:
        if training:
            schema = {
                "input_ids": _IDS,
                "attention_mask": _MASK,
                "start_positions": _INT,
                "end_positions": _INT,
            }
        else:
            schema = {
                "input_ids": _IDS,
                "attention_mask": _MASK,
                "example_id": _text(),
                "offset_mapping": datasets.List(datasets.List(_INT)),
            }
        return _tokenize_qa, {"doc_stride": doc_stride, "training": training}, datasets.Features(schema)
    column = dataset.column_names[0] if len(dataset.column_names) == 1 else "text"
    return (
        _tokenize_texts,
        {"column": column},
        datasets.Features({"input_ids": _IDS, "attention_mask": _MASK}),
    )


def _text() -> datasets.Value:
    return datasets.Value("string")


def _check_dataset(task: TaskSpec, dataset: Any, tokenizer: Any, names: tuple[str, ...]) -> None:
    """Fail early, in one line, on inputs the tokenizer functions cannot handle."""
    if not isinstance(dataset, datasets.Dataset):
        raise DataError(f"{task.name}: featurize needs a datasets.Dataset, got {type(dataset).__name__}")
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"{task.name}: featurize needs a fast (Rust) tokenizer for offsets and word ids")
    if task.type is TaskType.RETRIEVAL:
        if len(dataset.column_names) != 1 and "text" not in dataset.column_names:
            raise DataError(
                f"{task.name}: retrieval features need one text column (select source or target), "
                f"got columns {', '.join(dataset.column_names)}"
            )
        return
    missing = [c for c in CANONICAL_COLUMNS[task.type] if c not in dataset.column_names]
    if missing:
        raise DataError(
            f"{task.name}: dataset lacks canonical column(s) {', '.join(missing)} (use load_split)"
        )
    needs_names = task.type in (
        TaskType.SINGLE_CLASSIFICATION,
        TaskType.PAIR_CLASSIFICATION,
        TaskType.TAGGING,
    )
    if needs_names and not names:
        raise DataError(f"{task.name}: no label names (pass label_names, e.g. the tags of the train split)")


# -- per task type (batched, run by Dataset.map) ------------------------------------------------


def _label_ids(labels: Iterable[str], label_index: Mapping[str, int], where: str) -> list[int]:
    try:
        return [label_index[label] for label in labels]
    except KeyError as error:
        raise DataError(f"{where}: label {error.args[0]!r} is not among the label names") from None


def _tokenize_classification(
    batch: Batch, tokenizer: Any, max_length: int, label_index: Mapping[str, int], where: str
) -> Batch:
    encoded = tokenizer(
        batch["text_a"],
        batch.get("text_b"),
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
    )
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "labels": _label_ids(batch["label"], label_index, where),
    }


def _tokenize_tagging(
    batch: Batch, tokenizer: Any, max_length: int, label_index: Mapping[str, int], where: str
) -> Batch:
    encoded = tokenizer(
        batch["tokens"],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=False,
    )
    all_labels, all_words = [], []
    for row, tags in enumerate(batch["tags"]):
        tag_ids = _label_ids(tags, label_index, where)
        labels, words = [], []
        previous = None
        for word in encoded.word_ids(row):
            # Only a word's first sub-token carries its tag (and maps the prediction back).
            first = word is not None and word != previous
            labels.append(tag_ids[word] if first else IGNORE_INDEX)
            words.append(word if first else -1)
            previous = word
        all_labels.append(labels)
        all_words.append(words)
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "labels": all_labels,
        "word_index": all_words,
    }


def _tokenize_multiple_choice(batch: Batch, tokenizer: Any, max_length: int) -> Batch:
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


def _tokenize_texts(batch: Batch, tokenizer: Any, max_length: int, column: str) -> Batch:
    encoded = tokenizer(batch[column], truncation=True, max_length=max_length, return_token_type_ids=False)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def _tokenize_qa(batch: Batch, tokenizer: Any, max_length: int, doc_stride: int, training: bool) -> Batch:
    questions = _clip_questions([q.lstrip() for q in batch["question"]], tokenizer, max_length, doc_stride)
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
            _answer_tokens(encoded["offset_mapping"][i], encoded.sequence_ids(i), batch["answers"][sample])
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


def _answer_tokens(
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


def _clip_questions(questions: list[str], tokenizer: Any, max_length: int, doc_stride: int) -> list[str]:
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


# -- cache ----------------------------------------------------------------------------------------


def _cache_name(task: TaskSpec, cache_key: str | None, key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", cache_key or "")
    return f"{task.name}-{readable}-{key}" if readable else f"{task.name}-{key}"


def _save_atomically(features: datasets.Dataset, path: Path) -> datasets.Dataset:
    """Write to a private temporary directory and rename it into place; readers never see half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        features.save_to_disk(str(temporary))
        try:
            os.rename(temporary, path)
        except OSError:
            # Another process finished the same cache first: keep theirs.
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    # Reload from the cache so the first and later calls return the same memory-mapped dataset.
    return datasets.load_from_disk(str(path))


# -- batches --------------------------------------------------------------------------------------


def model_inputs(features: datasets.Dataset) -> datasets.Dataset:
    """The features without post-processing columns (``example_id``, ``offset_mapping``, ``word_index``)."""
    return features.select_columns([c for c in MODEL_INPUT_COLUMNS if c in features.column_names])


def collate(batch: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of feature rows to the longest sequence and stack them into long tensors."""
    if not batch:
        raise ValueError("collate: empty batch")
    rows = [{key: _as_lists(row[key]) for key in MODEL_INPUT_COLUMNS if key in row} for row in batch]
    pad_values = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}
    out: dict[str, torch.Tensor] = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if not isinstance(values[0], list):
            out[key] = torch.tensor(values, dtype=torch.long)
        elif values[0] and isinstance(values[0][0], list):
            # Multiple choice: [batch, n_choices, length], padded to the longest choice of the batch.
            if len({len(choices) for choices in values}) != 1:
                raise ValueError("collate: examples in one batch have different numbers of choices")
            length = max(len(seq) for choices in values for seq in choices)
            out[key] = torch.stack([_pad(choices, length, pad_values.get(key, 0)) for choices in values])
        else:
            length = max(len(seq) for seq in values)
            out[key] = _pad(values, length, pad_values.get(key, 0))
    return out


def _as_lists(value: Any) -> Any:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_as_lists(item) for item in value]
    return value


def _pad(sequences: list[list[int]], length: int, value: int) -> torch.Tensor:
    padded = torch.full((len(sequences), length), value, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        padded[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return padded


# -- QA post-processing -----------------------------------------------------------------------------


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
