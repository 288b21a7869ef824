"""Sentence-pair classification (XNLI, PAWS-X, MNLI, QQP): ``text_a``, ``text_b`` and a ``label``."""

from __future__ import annotations

import datasets

from trainers.task_types._base import TEXT
from trainers.task_types._classification import ClassificationType
from trainers.tasks import TaskType


class PairClassification(ClassificationType):
    """Two sentences, one label from the registry's label names."""

    type = TaskType.PAIR_CLASSIFICATION
    columns = ("text_a", "text_b", "label")
    canonical_features = datasets.Features({"text_a": TEXT, "text_b": TEXT, "label": TEXT})


TYPE = PairClassification()
