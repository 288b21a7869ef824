"""The task-type contract: every type in ``TASK_TYPES`` from canonical rows through its features, head, loss
and decoding to its metric, on a tiny tokenizer and a tiny randomly initialised encoder (no training).

A new type is covered once it is registered; it needs one example below (``EXAMPLES``).
"""

from __future__ import annotations

from typing import Any

import datasets
import pytest
import torch
from test_features import SHORT, qa_example, tokenizer  # noqa: F401 (a fixture)
from transformers import BertConfig, BertModel

from trainers import metrics
from trainers.data import collate, featurize, model_inputs
from trainers.evaluation import predict
from trainers.modeling import HeadSpec, TransferModel
from trainers.prepare import EvalSet
from trainers.task_types import TASK_TYPES, TaskTypeBase, type_of
from trainers.task_types.retrieval import SCORERS
from trainers.task_types.retrieval import TYPE as RETRIEVAL
from trainers.tasks import TASKS, TaskSpec, TaskType

# Canonical rows of one task of each type, and the label names its features need.
EXAMPLES: dict[TaskType, tuple[list[dict[str, Any]], tuple[str, ...]]] = {
    TaskType.SINGLE_CLASSIFICATION: (
        [{"text_a": "The cat sat.", "label": "positive"}, {"text_a": "Rome", "label": "negative"}],
        ("negative", "positive"),
    ),
    TaskType.PAIR_CLASSIFICATION: (
        [
            {"text_a": "The cat sat.", "text_b": "A dog slept.", "label": "yes"},
            {"text_a": "Paris", "text_b": "France", "label": "no"},
        ],
        ("no", "yes"),
    ),
    TaskType.TAGGING: (
        [{"tokens": ["Paris", "is", "a", "city"], "tags": ["B-LOC", "O", "O", "O"]}],
        ("O", "B-LOC"),
    ),
    TaskType.SPAN_QA: ([qa_example("q1", SHORT, "Paris"), qa_example("q2", SHORT, "France")], ()),
    TaskType.MULTIPLE_CHOICE: (
        [
            {"context": "", "question": "Where is Paris?", "choices": ["France", "Italy"], "label": 0},
            {"context": "A man cuts bread.", "question": "", "choices": ["no", "he eats it"], "label": 1},
        ],
        (),
    ),
    TaskType.RETRIEVAL: ([{"source": "Berlin ist eine Stadt.", "target": "Berlin is a city."}], ()),
    TaskType.MASKED_LM: (
        [{"text": "The cat sat on the mat in Paris."}, {"text": "Berlin ist eine Stadt in Deutschland."}],
        (),
    ),
}


def _a_task(task_type: TaskType) -> TaskSpec:
    """The first registry task of ``task_type``."""
    return next(task for task in TASKS.values() if task.type is task_type)


def _rows(task_type: TaskType) -> datasets.Dataset:
    return datasets.Dataset.from_list(
        EXAMPLES[task_type][0], features=TASK_TYPES[task_type].canonical_features
    )


def _model(task: TaskSpec, names: tuple[str, ...], vocab: int) -> TransferModel:
    """A one-layer encoder with hidden size 16, randomly initialised (nothing is downloaded)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    return TransferModel(BertModel(config, add_pooling_layer=False), [HeadSpec.of(task, names)])


def test_every_task_type_is_registered() -> None:
    assert set(TASK_TYPES) == set(TaskType)
    assert set(EXAMPLES) == set(TASK_TYPES), "a registered task type needs an example here"
    for task_type, module in TASK_TYPES.items():
        assert isinstance(module, TaskTypeBase)
        assert module.type is task_type
        assert tuple(module.canonical_features) == module.columns
        assert module.optional_roles <= set(module.columns)
        assert module.label_roles <= set(module.columns)
        assert module.names_from_data is None or module.names_from_data in module.label_roles
    assert all(type_of(task) is TASK_TYPES[task.type] for task in TASKS.values())


def test_each_miniature_generator_is_in_the_module_its_type_names() -> None:
    from trainers.data.miniature import GENERATORS

    for name, entry in GENERATORS.items():
        assert entry.generate.__module__ == type_of(TASKS[name]).miniature, name


def test_every_retrieval_task_has_a_scorer() -> None:
    retrieval = [task for task in TASKS.values() if task.type is TaskType.RETRIEVAL]
    assert retrieval
    for task in retrieval:
        assert type_of(task) is RETRIEVAL and RETRIEVAL.scorer(task) is SCORERS[task.metric]
    unknown = TaskSpec("x", TaskType.RETRIEVAL, None, {}, metric="recall_at_5")
    with pytest.raises(ValueError, match="no retrieval scorer for metric 'recall_at_5'"):
        RETRIEVAL.scorer(unknown)


@pytest.mark.parametrize("task_type", list(TASK_TYPES), ids=str)
def test_every_task_type_from_rows_to_its_metric(task_type: TaskType, tokenizer: Any) -> None:  # noqa: F811
    task, module = _a_task(task_type), TASK_TYPES[task_type]
    names = EXAMPLES[task_type][1]
    rows = _rows(task_type)
    options: dict[str, Any] = {"max_length": 48, "doc_stride": 16, "label_names": names}
    if not module.trainable:
        # No head: retrieval embeds each side on its own, one text column at a time.
        features = featurize(task, rows.select_columns(["source"]), tokenizer, training=False, **options)
        assert features.column_names == ["input_ids", "attention_mask"]
        with pytest.raises(ValueError, match="no trainable head"):
            _model(task, names, len(tokenizer))
        return

    # Training: features -> a padded batch -> the head's loss, which reaches the encoder.
    train = featurize(task, rows, tokenizer, training=True, **options)
    model = _model(task, names, len(tokenizer))
    batch = collate([train[i] for i in range(len(train))], tokenizer.pad_token_id)
    loss, _ = model(task.name, batch)
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad is not None

    # Evaluation: the head's outputs decoded into what the task's metric takes, one per example.
    evaluation = featurize(task, rows, tokenizer, training=False, **options)
    assert set(model_inputs(evaluation).column_names) <= set(evaluation.column_names)
    data = EvalSet(task, "en", "dev", rows, evaluation)
    predictions, references = predict(
        model, task.name, data, names, 2, tokenizer.pad_token_id, torch.device("cpu")
    )
    assert len(predictions) == len(references) == len(rows)
    scores = metrics.compute(task.metric, predictions, references, "en")
    assert 0.0 <= metrics.primary(task.metric, scores) <= 100.0
