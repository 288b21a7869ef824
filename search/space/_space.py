"""A loaded space (``SearchSpace``): flat points to configs, per-target points, and the define-by-run function."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search.layout import SearchLayout
from search.space._params import (
    INTERMEDIATE_TASK,
    MIXTURE_SEPARATOR,
    NO_INTERMEDIATE,
    TARGET,
    TARGET_TASK,
    CategoricalParam,
    IntParam,
    Param,
    TunerSettings,
    fail,
)
from trainers.config import TransferConfig
from trainers.tasks import INTERMEDIATE_TASK_NAMES, get_task

if TYPE_CHECKING:  # optuna is only needed for the annotation; keep importing this module cheap
    import optuna


@dataclass(frozen=True)
class SearchSpace:
    """A loaded, validated space: what every trial starts from, what is searched, and how Tune runs it."""

    name: str
    """Study-name stem (``study_name`` appends the target)."""
    description: str
    """Free text."""
    targets: tuple[str, ...]
    """One study per target."""
    base: dict[str, Any] = field(hash=False)
    """Partial TransferConfig dict every trial starts from (read-only: copied before use)."""
    params: tuple[Param, ...]
    """The searched parameters, in suggestion order."""
    points: tuple[dict[str, Any], ...] = field(hash=False)
    """points_to_evaluate as written (mixtures joined), before per-target filtering."""
    tuner: TunerSettings
    """Ray Tune settings."""
    encoders: tuple[str, ...]
    """Every encoder a trial may use."""
    layers: int | None
    """The smallest layer count among ``encoders`` (what ``layers`` resolved to); None if unknown."""
    source: str = "<dict>"
    """The file it came from, for messages."""

    @property
    def param_names(self) -> tuple[str, ...]:
        """The searched keys, in suggestion order."""
        return tuple(param.name for param in self.params)

    def param(self, name: str) -> Param:
        """The parameter called ``name``."""
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def check_target(self, target: str) -> str:
        """``target`` if this space has a study for it, else a ``SpaceError``."""
        if target not in self.targets:
            fail(self.source, f"target {target!r} is not one of the space's targets {list(self.targets)}")
        return target

    def study_name(self, target: str) -> str:
        """The Optuna/Tune study name of ``target``'s study, in a search named after the space."""
        return SearchLayout(self.name).study_name(self.check_target(target))

    def define_by_run(self, target: str) -> DefineByRun:
        """The define-by-run function of ``target``'s study."""
        return DefineByRun(self, target)

    def points_for(self, target: str) -> list[dict[str, Any]]:
        """points_to_evaluate for ``target``'s study, flat, without the parameters inactive for it.

        Points that become empty or repeat an earlier one (a retrieval target drops target.*) are left out.
        """
        self.check_target(target)
        points: list[dict[str, Any]] = []
        for point in self.points:
            kept = self._filter_point(point, target)
            if kept and kept not in points:
                points.append(kept)
        return points

    def to_transfer_config(self, params: Mapping[str, Any], target: str) -> TransferConfig:
        """The full config of one flat point (as Tune hands it to a trial) in ``target``'s study.

        Raises ``SpaceError`` for a key that is not searched here or a mismatched ``target.task``, and
        ``ConfigError`` (from ``TransferConfig``) for values that cannot run.
        """
        return TransferConfig.from_dict(self._config_dict(params, self.check_target(target)))

    def base_config(self, target: str) -> TransferConfig:
        """The config of ``target``'s first seeded point (its fixed settings are every trial's)."""
        points = self.points_for(target)
        return self.to_transfer_config(points[0] if points else {}, target)

    # -- internals -------------------------------------------------------------------------------

    def _assign(self, target: str, pick: Callable[[Param], Any]) -> dict[str, Any]:
        """Walk the parameters in order and pick a value for each active one: the define-by-run logic."""
        assigned: dict[str, Any] = {TARGET: target}
        for param in self.params:
            if all(condition.holds(assigned) for condition in param.when):
                assigned[param.name] = pick(param)
        del assigned[TARGET]
        return assigned

    def _filter_point(self, point: Mapping[str, Any], target: str) -> dict[str, Any]:
        """The entries of ``point`` whose parameter can be active in ``target``'s study."""
        known: dict[str, Any] = {TARGET: target}
        dropped: set[str] = set()
        kept: dict[str, Any] = {}
        for param in self.params:
            if param.name not in point:
                continue
            # A condition on a parameter the point leaves to the sampler cannot be decided: keep the entry.
            if all(c.key not in dropped and (c.key not in known or c.holds(known)) for c in param.when):
                kept[param.name] = known[param.name] = point[param.name]
            else:
                dropped.add(param.name)
        return kept

    def _config_dict(self, params: Mapping[str, Any], target: str) -> dict[str, Any]:
        data = copy.deepcopy(self.base)
        searched = set(self.param_names)
        intermediate: str | None = None
        for key, value in params.items():
            if key == TARGET_TASK:
                if value != target:
                    fail(self.source, f"{TARGET_TASK}={value!r} but the study's target is {target!r}")
            elif key not in searched:
                fail(self.source, f"{key}: not a searched parameter of this space ({', '.join(searched)})")
            elif key == INTERMEDIATE_TASK:
                intermediate = mixture(value, key)
            else:
                set_dotted(data, key, value)
        data.setdefault("target", {})["task"] = target
        task = get_task(target)
        if task.is_retrieval and "target.freeze_depth" not in params:
            # The base's target phase is the trained targets'; a retrieval target has none to freeze.
            data["target"].pop("freeze_depth", None)
        split = get_dotted(data, "evaluation.split")
        has_dev = task.hub is None or "dev" in task.hub.splits
        if split == "dev" and "evaluation.split" not in params and not has_dev:
            # `dev` is for targets whose test labels a download strips; a target without a dev split
            # (Tatoeba, XQuAD, TyDiQA-GoldP) has its test set labelled: it is scored there (its results
            # name the split).
            data["evaluation"].pop("split")
        searched_tasks = INTERMEDIATE_TASK in searched
        if intermediate is None and searched_tasks and not (data.get("intermediate") or {}).get("tasks"):
            # A point that leaves the intermediate task to the sampler (e.g. the base config of a space
            # with no seeded points) has no intermediate phase, not one without tasks.
            data["intermediate"] = None
        elif intermediate == NO_INTERMEDIATE:
            data["intermediate"] = None
        elif intermediate is not None:
            section = data.get("intermediate") or {}
            section["tasks"] = intermediate.split(MIXTURE_SEPARATOR)
            data["intermediate"] = section
        return data


@dataclass(frozen=True)
class DefineByRun:
    """Ray's ``OptunaSearch(space=...)`` function for one target's study; picklable (no closures).

    It only calls ``trial.suggest_*`` in the space's fixed order, skips parameters whose ``when`` is
    false, and returns the constant ``{"target.task": target}``.
    """

    space: SearchSpace
    """The space."""
    target: str = ""
    """The study's fixed target (empty: the space's first target)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", self.space.check_target(self.target or self.space.targets[0]))

    def __call__(self, trial: optuna.Trial) -> dict[str, Any] | None:
        """Suggest this trial's parameters; return the constants."""
        self.space._assign(self.target, lambda param: param.suggest(trial))
        return {TARGET_TASK: self.target}


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data[a][b] = value`` for ``key`` ``a.b``, making (or replacing a null) section on the way."""
    node = data
    *sections, leaf = key.split(".")
    for section in sections:
        if not isinstance(node.get(section), dict):  # absent, or null (e.g. base intermediate: null)
            node[section] = {}
        node = node[section]
    node[leaf] = value


def get_dotted(data: Mapping[str, Any], key: str) -> Any:
    """``data[a][b]`` for ``key`` ``a.b``; None where a section or the leaf is missing."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def mixture(value: Any, key: str) -> str:
    """An intermediate_task choice as one string: ``none``, ``mnli`` or ``mnli+qqp``."""
    if isinstance(value, str):
        tasks = value.split(MIXTURE_SEPARATOR)
    elif isinstance(value, list) and value and all(isinstance(task, str) for task in value):
        tasks = list(value)
    else:
        fail(key, f"an intermediate task choice is none, a task or a list of tasks, got {value!r}")
    if tasks == [NO_INTERMEDIATE]:
        return NO_INTERMEDIATE
    for task in tasks:
        if task not in INTERMEDIATE_TASK_NAMES:
            known = ", ".join((NO_INTERMEDIATE, *INTERMEDIATE_TASK_NAMES))
            fail(key, f"unknown intermediate task {task!r}; known: {known}")
    if len(set(tasks)) != len(tasks):
        fail(key, f"mixture {value!r} repeats a task")
    return MIXTURE_SEPARATOR.join(tasks)


def enumerate_points(
    space: SearchSpace, target: str, limit: int | None = None
) -> list[dict[str, Any]] | None:
    """Every flat point ``target``'s study can suggest (conditions followed), or None when a parameter is
    continuous (a float, or a log-scaled int) or the points would number more than ``limit``."""
    points: list[dict[str, Any]] = [{TARGET: target}]
    for param in space.params:
        if isinstance(param, CategoricalParam):
            values: list[Any] = list(param.choices)
        elif isinstance(param, IntParam) and not param.log:
            values = list(range(param.low, param.high + 1, param.step))
        else:
            return None
        grown: list[dict[str, Any]] = []
        for point in points:
            if all(condition.holds(point) for condition in param.when):
                grown.extend({**point, param.name: value} for value in values)
            else:
                grown.append(point)
        if limit is not None and len(grown) > limit:
            return None
        points = grown
    return [{k: v for k, v in point.items() if k != TARGET} for point in points]
