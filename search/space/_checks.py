"""Cross-checks of a loaded space: what no single section can see (freeze depths against the encoders,
retrieval targets, intermediate settings without a phase 1, and a real ``TransferConfig`` for every corner)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from search.space._params import (
    INTERMEDIATE_TASK,
    NO_INTERMEDIATE,
    TARGET,
    CategoricalParam,
    Choice,
    Param,
    fail,
)
from search.space._space import SearchSpace, get_dotted
from trainers._fromdict import is_number
from trainers.config import ConfigError, TransferConfig
from trainers.tasks import get_task


def check_space(space: SearchSpace) -> None:
    """Every cross-check, in order; the first failure is a ``SpaceError`` naming the key."""
    _check_freeze_depths(space)
    _check_retrieval_targets(space)
    _check_intermediate_params(space)
    _check_configs(space)


def _check_freeze_depths(space: SearchSpace) -> None:
    """A freeze depth above the smallest encoder's layer count would freeze layers that do not exist."""
    if space.layers is None:
        return
    if len(space.encoders) == 1:
        where = f"the {space.layers} layers of {space.encoders[0]}"
    else:
        where = f"{space.layers}, the smallest layer count of {', '.join(space.encoders)}"
    for param in space.params:
        largest = param.largest()
        if param.name.endswith(".freeze_depth") and largest is not None and largest > space.layers:
            bound = "choices" if isinstance(param, CategoricalParam) else "high"
            fail(f"search.{param.name}.{bound}", f"{largest} is above {where}")
    for section in ("intermediate", "target"):
        fixed = get_dotted(space.base, f"{section}.freeze_depth")
        if is_number(fixed) and fixed > space.layers:
            fail(f"base.{section}.freeze_depth", f"{fixed} is above {where}")


def _check_retrieval_targets(space: SearchSpace) -> None:
    """Retrieval targets skip the target phase: searching its settings there would waste trials."""
    for target in space.targets:
        if not get_task(target).is_retrieval:
            continue
        for param in space.params:
            static = [c for c in param.when if c.key == TARGET]
            if param.name.startswith("target.") and all(c.holds({TARGET: target}) for c in static):
                fail(
                    f"search.{param.name}",
                    f"{target} is a retrieval target and has no target phase; "
                    "add `when: {target: {not_in: [bucc, tatoeba]}}`",
                )


def _check_intermediate_params(space: SearchSpace) -> None:
    """intermediate.* settings mean nothing for trials without an intermediate phase."""
    names = space.param_names
    task = space.param(INTERMEDIATE_TASK) if INTERMEDIATE_TASK in names else None
    for param in space.params:
        if not param.name.startswith("intermediate."):
            continue
        key = f"search.{param.name}"
        if task is None and get_dotted(space.base, "intermediate.tasks") is None:
            fail(key, f"no intermediate phase: search {INTERMEDIATE_TASK} or set base.intermediate.tasks")
        if task is not None and task.contains(NO_INTERMEDIATE):
            excluded = [
                c for c in param.when if c.key == INTERMEDIATE_TASK and not c.holds({c.key: NO_INTERMEDIATE})
            ]
            if not excluded:
                fail(
                    key,
                    f"needs `when: {{{INTERMEDIATE_TASK}: {{not: none}}}}` (there is no phase 1 for none)",
                )


def _check_configs(space: SearchSpace) -> None:
    """Build real TransferConfigs from base + points (corners, every choice, the given points)."""
    for target in space.targets:
        picks: list[Callable[[Param], Any]] = [lambda p: p.corner(0), lambda p: p.corner(1)]
        for param in space.params:
            if isinstance(param, CategoricalParam):
                picks += [_pick_choice(param.name, choice) for choice in param.choices]
        for pick in picks:
            _build(space, space._assign(target, pick), target, "base")
        for index, point in enumerate(space.points):
            kept = space._filter_point(point, target)
            assigned = space._assign(target, _pick_point(kept))
            _build(space, assigned, target, f"points_to_evaluate[{index}]")


def _pick_point(point: Mapping[str, Any]) -> Callable[[Param], Any]:
    return lambda param: point.get(param.name, param.corner(0))


def _pick_choice(name: str, choice: Choice) -> Callable[[Param], Any]:
    return lambda param: choice if param.name == name else param.corner(0)


def _build(space: SearchSpace, assigned: dict[str, Any], target: str, key: str) -> None:
    try:
        TransferConfig.from_dict(space._config_dict(assigned, target))
    except ConfigError as error:
        # ConfigError names the field: when that is a searched one, blame the search entry, not base.
        blamed = [name for name in assigned if str(error).startswith(name)]
        if key == "base" and blamed:
            key = f"search.{max(blamed, key=len)}"
        point = ", ".join(f"{name}={value}" for name, value in assigned.items())
        fail(key, f"{error} (target {target}; point {point or '{}'})")
