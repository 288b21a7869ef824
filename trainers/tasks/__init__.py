"""The task registry: every XTREME target and every intermediate task, by name.

Adding a task is one ``TaskSpec`` entry in ``xtreme.py`` or ``intermediate.py`` (or ``register_task`` at run
time, for a plugin or a test); a task of a new type also needs its module in ``trainers/task_types``. Its
data comes from the hub, local files or an XTREME download; a miniature generator is optional
(docs/adding-a-task.md).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from trainers.errors import UserError
from trainers.tasks._spec import INTERMEDIATE_ONLY_TYPES, SPLITS, HubSource, TaskSpec, TaskSpecError, TaskType
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


class TaskRegistryError(UserError, ValueError):
    """A task that cannot join the registry (its name is taken, its role unknown)."""


ROLES = ("target", "intermediate", "both")
"""The values of ``TaskSpec.role``."""


def register_task(task: TaskSpec) -> TaskSpec:
    """Add ``task`` to the registry of this process, as one entry in ``xtreme.py`` or ``intermediate.py`` does.

    For tasks kept outside this repository (a module named in ``XSTILTS_TASK_MODULES``) and for tests: configs,
    ``xstilts run`` and ``python -m trainers`` in this process see it. Search spaces read the task lists
    fixed at import (``TARGET_TASKS``, ``INTERMEDIATE_TASK_NAMES``): a task to search over is an entry in
    the registry's files.
    """
    if task.name in TASKS:
        raise TaskRegistryError(f"register_task: a task named {task.name!r} is already registered")
    if task.role not in ROLES:
        raise TaskRegistryError(
            f"register_task: {task.name}: role must be one of {', '.join(ROLES)}, got {task.role!r}"
        )
    TASKS[task.name] = task
    return task


TASK_MODULES_ENV = "XSTILTS_TASK_MODULES"
"""Comma-separated modules imported when the registry loads, each registering its tasks (``register_task``).

Every process that loads the registry with the variable set imports them (``xstilts``, ``python -m trainers``,
and Ray workers that inherit the environment: a local cluster this process starts), so tasks kept outside
this repository need no edit here.
"""


def _import_task_modules() -> None:
    for name in (part.strip() for part in os.environ.get(TASK_MODULES_ENV, "").split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise UserError(f"{TASK_MODULES_ENV}: cannot import {name!r} ({error})") from None


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


_import_task_modules()  # last: the modules import this one's names

__all__ = [
    "CANONICAL_COLUMNS",
    "INTERMEDIATE_ONLY_TYPES",
    "INTERMEDIATE_TASK_NAMES",
    "OPTIONAL_ROLES",
    "ROLES",
    "SPLITS",
    "TARGET_TASKS",
    "TASKS",
    "TASK_MODULES_ENV",
    "HubSource",
    "TaskRegistryError",
    "TaskSpec",
    "TaskSpecError",
    "TaskType",
    "UnknownTaskError",
    "get_task",
    "register_task",
]
