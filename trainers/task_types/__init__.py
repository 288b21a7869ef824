"""Task types: one module per ``TaskType`` holding everything the type needs, found through ``TASK_TYPES``.

A type module (``single_classification``, ``pair_classification``, ``token_tagging``, ``extractive_qa``,
``multiple_choice``, ``retrieval``, ``masked_lm``) subclasses ``TaskTypeBase``: its canonical columns and their schema,
label conversion, tokenisation to features and their checks, the head and its loss, decoding the head's
outputs into metric inputs, and XTREME's file format for its predictions. A new task of an existing type
is one ``TaskSpec`` entry; a new type is one new module plus its line in ``TASK_TYPES``.
"""

from __future__ import annotations

from trainers.task_types import (
    extractive_qa,
    masked_lm,
    multiple_choice,
    pair_classification,
    retrieval,
    single_classification,
    token_tagging,
)
from trainers.task_types._base import IGNORE_INDEX, FeaturePlan, TaskTypeBase
from trainers.tasks import TaskSpec, TaskType

TASK_TYPES: dict[TaskType, TaskTypeBase] = {
    module.TYPE.type: module.TYPE
    for module in (
        single_classification,
        pair_classification,
        token_tagging,
        extractive_qa,
        multiple_choice,
        retrieval,
        masked_lm,
    )
}
"""Each task type -> the object holding everything it needs."""


def type_of(task: TaskSpec) -> TaskTypeBase:
    """The type module's object for ``task``."""
    return TASK_TYPES[task.type]


__all__ = ["IGNORE_INDEX", "TASK_TYPES", "FeaturePlan", "TaskTypeBase", "type_of"]
