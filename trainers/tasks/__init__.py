"""The task registry: every XTREME target and every intermediate task, by name.

Adding a task is one ``TaskSpec`` entry in ``xtreme.py`` or ``intermediate.py``.
"""

from __future__ import annotations

from typing import Any

from trainers.errors import UserError
from trainers.tasks._spec import SPLITS, HubSource, TaskSpec, TaskType
from trainers.tasks.intermediate import INTERMEDIATE_TASKS
from trainers.tasks.xtreme import XTREME_TASKS

TASKS: dict[str, TaskSpec] = {task.name: task for task in (*XTREME_TASKS, *INTERMEDIATE_TASKS)}
TARGET_TASKS: tuple[str, ...] = tuple(t.name for t in TASKS.values() if t.role in ("target", "both"))
INTERMEDIATE_TASK_NAMES: tuple[str, ...] = tuple(
    t.name for t in TASKS.values() if t.role in ("intermediate", "both")
)


class UnknownTaskError(UserError, ValueError):
    """A task name that the registry does not hold."""


def get_task(name: str) -> TaskSpec:
    """The registry entry for ``name``, or a one-line error listing the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def __getattr__(name: str) -> Any:
    # Faces of what the task-type modules hold (PEP 562), loaded on first use: importing the registry
    # stays free of torch and datasets, which the type modules import.
    if name == "CANONICAL_COLUMNS":
        from trainers.task_types import TASK_TYPES

        return {task_type: module.columns for task_type, module in TASK_TYPES.items()}
    if name == "OPTIONAL_ROLES":
        from trainers.task_types import TASK_TYPES

        return {task_type: module.optional_roles for task_type, module in TASK_TYPES.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CANONICAL_COLUMNS",
    "INTERMEDIATE_TASK_NAMES",
    "OPTIONAL_ROLES",
    "SPLITS",
    "TARGET_TASKS",
    "TASKS",
    "HubSource",
    "TaskSpec",
    "TaskType",
    "UnknownTaskError",
    "get_task",
]
