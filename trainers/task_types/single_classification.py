"""Single-sentence classification (SST-2): ``text_a`` and a ``label``."""

from __future__ import annotations

import datasets

from trainers.task_types._base import TEXT
from trainers.task_types._classification import ClassificationType
from trainers.tasks import TaskType


class SingleClassification(ClassificationType):
    """One sentence, one label; label names may come from the training data."""

    type = TaskType.SINGLE_CLASSIFICATION
    columns = ("text_a", "label")
    canonical_features = datasets.Features({"text_a": TEXT, "label": TEXT})
    names_from_data = "label"


TYPE = SingleClassification()
