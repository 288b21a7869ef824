"""Reading a space: the YAML file, its sections, and the typed parameters they declare."""

from __future__ import annotations

import copy
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from search.checks import check_search_name
from search.space._checks import check_space
from search.space._params import (
    INTERMEDIATE_TASK,
    LAYERS,
    SPACES_DIR,
    TARGET,
    TARGET_TASK,
    CategoricalParam,
    Choice,
    Condition,
    FloatParam,
    IntParam,
    Param,
    SpaceError,
    TunerSettings,
    fail,
)
from search.space._space import SearchSpace, get_dotted, mixture, set_dotted
from trainers._fromdict import (
    FieldError,
    boolean,
    check_keys,
    from_dict,
    integer,
    is_int,
    leaf_keys,
    mapping,
    number,
    string,
)
from trainers.config import DATA_PATH_FIELDS, ModelConfig, TransferConfig, is_relative_local_path
from trainers.encoders import layer_count
from trainers.errors import UserError
from trainers.tasks import INTERMEDIATE_TASK_NAMES, TARGET_TASKS


def load_space(path: str | Path) -> SearchSpace:
    """Load and validate a space file.

    A bare name (``demo``) is looked up in ``SPACES_DIR``, and so is a ``spaces/...`` path that does not
    exist from here, so ``xstilts search --space spaces/xtreme.yaml`` runs from any directory.
    """
    path = Path(path)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        path = SPACES_DIR / f"{path}.yaml"
    elif not path.exists() and not path.is_absolute() and path.parts[:1] == ("spaces",):
        shipped = SPACES_DIR.joinpath(*path.parts[1:])
        path = shipped if shipped.is_file() else path
    if not path.is_file():
        raise SpaceError(f"{path}: space file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # _Loader is a SafeLoader
    except UnicodeDecodeError as error:
        raise SpaceError(
            f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})"
        ) from None
    except yaml.YAMLError as error:
        raise SpaceError(f"{path}: not valid YAML ({_yaml_problem(error)})") from None
    return space_from_dict(data, source=str(path), default_name=path.stem)


def space_from_dict(data: Any, source: str = "<dict>", default_name: str = "space") -> SearchSpace:
    """Validate already-parsed space data; errors name ``source`` and the dotted key."""
    try:
        return _parse(data, source, default_name)
    except SpaceError as error:
        raise SpaceError(f"{source}: {error}") from None
    except FieldError as error:
        raise SpaceError(f"{source}: {error.render(': ', top='the top level')}") from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (YAML 1.2) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            # A key written twice would silently drop the first entry; merges (<<) may override on purpose.
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_problem(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(error).splitlines()[0]


_TOP_KEYS = ("name", "description", "targets", "num_layers", "base", "search", "points_to_evaluate", "tuner")
_PARAM_KEYS = {
    "categorical": ("type", "choices", "when"),
    "float": ("type", "low", "high", "log", "when"),
    "int": ("type", "low", "high", "step", "log", "when"),
}
_SCHEDULER_KEYS = {
    "asha": ("type", "grace_period", "reduction_factor", "max_t", "time_attr"),
    "fifo": ("type",),
}
_OPERATORS = ("eq", "not", "in", "not_in")


# target.task is fixed per study and intermediate.tasks comes from intermediate_task: neither is searched.
SEARCHABLE_KEYS: frozenset[str] = frozenset(
    (leaf_keys(TransferConfig) - {TARGET_TASK, "intermediate.tasks"}) | {INTERMEDIATE_TASK}
)
"""The keys ``search`` accepts."""


def _parse(data: Any, source: str, default_name: str) -> SearchSpace:
    data = mapping(data, "")
    check_keys(data, _TOP_KEYS, "")
    name = string(data.get("name", default_name), "name")
    try:
        check_search_name(name)
    except UserError as error:
        fail("name", str(error))
    description = string(data.get("description", ""), "description", allow_empty=True)
    targets = _parse_targets(data.get("targets"))
    raw_search = mapping(data.get("search"), "search")
    base = _parse_base(data.get("base", {}), searches_intermediate=INTERMEDIATE_TASK in raw_search)
    encoders = _encoders(base, raw_search)
    layers, unknown = _smallest_layers(data.get("num_layers"), encoders)
    params = _parse_search(raw_search, targets, layers, unknown)
    points = _parse_points(data.get("points_to_evaluate", []), params)
    tuner = _parse_tuner(data.get("tuner", {}))
    space = SearchSpace(name, description, targets, base, params, points, tuner, encoders, layers, source)
    check_space(space)
    return space


# -- sections --------------------------------------------------------------------------------------


def _parse_targets(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        fail("targets", f"must be a non-empty list of target tasks, got {raw!r}")
    for index, target in enumerate(raw):
        if target in INTERMEDIATE_TASK_NAMES and target not in TARGET_TASKS:
            fail(f"targets[{index}]", f"{target} is an intermediate task, not an XTREME target")
        if target not in TARGET_TASKS:
            fail(f"targets[{index}]", f"unknown target task {target!r}; known: {', '.join(TARGET_TASKS)}")
    if len(set(raw)) != len(raw):
        fail("targets", "lists a target twice")
    return tuple(raw)


def _parse_base(raw: Any, searches_intermediate: bool) -> dict[str, Any]:
    base = copy.deepcopy(mapping(raw, "base"))
    if get_dotted(base, TARGET_TASK) is not None:
        fail(f"base.{TARGET_TASK}", "is set per study from `targets`; remove it")
    if searches_intermediate and get_dotted(base, "intermediate.tasks") is not None:
        fail("base.intermediate.tasks", f"conflicts with search.{INTERMEDIATE_TASK}; remove one")
    for key in LOCAL_PATH_KEYS:
        value = get_dotted(base, key)
        if isinstance(value, str) and is_relative_local_path(value):
            # As `xstilts run` reads it: from the directory the command runs in. A trial runs elsewhere
            # (Tune starts it in its trial directory), so it gets the path made absolute here.
            set_dotted(base, key, os.path.abspath(value))
    return base


LOCAL_PATH_KEYS = tuple(f"data.{name}" for name in DATA_PATH_FIELDS)
"""Paths in ``base`` that a relative value reads from the directory the search is started in."""


def _encoders(base: Mapping[str, Any], raw_search: Mapping[str, Any]) -> tuple[str, ...]:
    """The encoders a trial may use: the base model, or the choices of a searched model.name_or_path."""
    base_model = get_dotted(base, "model.name_or_path")
    base_name = base_model if isinstance(base_model, str) else ModelConfig.name_or_path
    spec = raw_search.get("model.name_or_path")
    if not isinstance(spec, dict) or not isinstance(spec.get("choices"), list):
        return (base_name,)
    names = [choice for choice in spec["choices"] if isinstance(choice, str)]
    if "when" in spec:  # when the condition is false, trials keep the base model
        names.append(base_name)
    return tuple(dict.fromkeys(names))


def encoder_layers(name: str, explicit: Mapping[str, int] | None = None) -> int | None:
    """The layer count of encoder ``name``: ``explicit`` first, then ``trainers.encoders.layer_count``."""
    return layer_count(name, explicit)


def _smallest_layers(raw: Any, encoders: tuple[str, ...]) -> tuple[int | None, list[str]]:
    """The smallest layer count among ``encoders`` (None if any is unknown), and the unknown encoders."""
    explicit: dict[str, int] = {}
    if is_int(raw):
        explicit = dict.fromkeys(encoders, raw)
    elif isinstance(raw, dict):
        for encoder, count in raw.items():
            if encoder not in encoders:
                fail(f"num_layers.{encoder}", f"not an encoder of this space ({', '.join(encoders)})")
            explicit[encoder] = integer(count, f"num_layers.{encoder}")
    elif raw is not None:
        fail("num_layers", f"must be an integer or a mapping encoder -> integer, got {raw!r}")
    for encoder, count in explicit.items():
        if count < 1:
            fail(
                f"num_layers.{encoder}" if isinstance(raw, dict) else "num_layers",
                f"must be >= 1, got {count}",
            )
    counts = {encoder: encoder_layers(encoder, explicit) for encoder in encoders}
    unknown = [encoder for encoder, count in counts.items() if count is None]
    known = [count for count in counts.values() if count is not None]
    return (None if unknown else min(known)), unknown


def _parse_search(
    raw: Mapping[str, Any], targets: tuple[str, ...], layers: int | None, unknown: list[str]
) -> tuple[Param, ...]:
    if not raw:
        fail("search", "must name at least one parameter")
    params: dict[str, Param] = {}
    for name, spec in raw.items():
        key = f"search.{name}"
        if name not in SEARCHABLE_KEYS:
            fail(
                key,
                "not a searchable key: intermediate_task or a dotted TransferConfig key (not target.task)",
            )
        spec = mapping(spec, key)
        kind = spec.get("type")
        if kind not in _PARAM_KEYS:
            fail(f"{key}.type", f"must be one of {', '.join(_PARAM_KEYS)}, got {kind!r}")
        check_keys(spec, _PARAM_KEYS[kind], key)
        when = _parse_when(spec.get("when"), f"{key}.when", params, raw, targets)
        if name == INTERMEDIATE_TASK and kind != "categorical":
            fail(f"{key}.type", "intermediate_task must be categorical")
        if kind == "categorical":
            params[name] = CategoricalParam(name, _parse_choices(name, spec.get("choices"), key), when)
        elif kind == "float":
            params[name] = _parse_float(name, spec, key, when)
        else:
            params[name] = _parse_int(name, spec, key, when, layers, unknown)
    return tuple(params.values())


def _parse_choices(name: str, raw: Any, key: str) -> tuple[Choice, ...]:
    key = f"{key}.choices"
    if not isinstance(raw, list) or not raw:
        fail(key, f"must be a non-empty list, got {raw!r}")
    choices: list[Choice] = []
    for index, value in enumerate(raw):
        if name == INTERMEDIATE_TASK:
            choices.append(mixture(value, f"{key}[{index}]"))
        elif value is None or isinstance(value, str | int | float | bool):
            choices.append(value)
        else:
            fail(f"{key}[{index}]", f"must be a string, number, boolean or null, got {value!r}")
    for index, value in enumerate(choices):
        if CategoricalParam(name, tuple(choices[:index])).contains(value):
            fail(key, f"repeats the choice {value!r}")
    return tuple(choices)


def _parse_float(name: str, spec: Mapping[str, Any], key: str, when: tuple[Condition, ...]) -> FloatParam:
    low = number(spec.get("low"), f"{key}.low")
    high = number(spec.get("high"), f"{key}.high")
    log = boolean(spec.get("log", False), f"{key}.log")
    _check_bounds(low, high, log, key)
    return FloatParam(name, low, high, log, when)


def _parse_int(
    name: str,
    spec: Mapping[str, Any],
    key: str,
    when: tuple[Condition, ...],
    layers: int | None,
    unknown: list[str],
) -> IntParam:
    low = integer(spec.get("low"), f"{key}.low")
    high_raw = spec.get("high")
    if high_raw == LAYERS:
        if layers is None:
            fail(f"{key}.high", f"`layers` needs the layer count of {', '.join(unknown)}: add num_layers")
        high = layers
    else:
        high = integer(high_raw, f"{key}.high")
    step = integer(spec.get("step", 1), f"{key}.step")
    log = boolean(spec.get("log", False), f"{key}.log")
    _check_bounds(low, high, log, key)
    if step < 1:
        fail(f"{key}.step", f"must be >= 1, got {step}")
    if log and step != 1:
        fail(f"{key}.step", "log scale needs step 1")
    if (high - low) % step:
        fail(f"{key}.step", f"high - low ({high} - {low}) must be a multiple of step {step}")
    return IntParam(name, low, high, step, log, when)


def _check_bounds(low: float, high: float, log: bool, key: str) -> None:
    if low >= high:
        fail(key, f"low ({low}) must be < high ({high})")
    if log and low <= 0:
        fail(f"{key}.low", f"log scale needs low > 0, got {low}")


def _parse_when(
    raw: Any,
    key: str,
    earlier: Mapping[str, Param],
    declared: Mapping[str, Any],
    targets: tuple[str, ...],
) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    raw = mapping(raw, key)
    if not raw:
        fail(key, "must hold at least one condition")
    conditions = []
    for ref, spec in raw.items():
        ref_key = f"{key}.{ref}"
        if ref != TARGET and ref not in earlier:
            where = "is declared after this parameter" if ref in declared else "is not a searched parameter"
            fail(ref_key, f"{ref!r} {where}; conditions refer to earlier parameters or `target`")
        negate, values = _parse_operator(spec, ref_key)
        normalised = tuple(_condition_value(value, ref, earlier, ref_key) for value in values)
        conditions.append(Condition(ref, normalised, negate))
    return tuple(conditions)


def _parse_operator(spec: Any, key: str) -> tuple[bool, list[Any]]:
    """``value`` / ``{eq|not: value}`` / ``{in|not_in: [values]}`` -> (negate, values)."""
    if not isinstance(spec, dict):
        return False, [spec]
    if len(spec) != 1 or next(iter(spec)) not in _OPERATORS:
        fail(key, f"a condition is a value or one of {{{': ..., '.join(_OPERATORS)}: ...}}, got {spec!r}")
    ((operator, value),) = spec.items()
    if operator in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            fail(f"{key}.{operator}", f"must be a non-empty list, got {value!r}")
        return operator == "not_in", value
    return operator == "not", [value]


def _condition_value(value: Any, ref: str, earlier: Mapping[str, Param], key: str) -> Choice:
    if ref == TARGET:
        if value not in TARGET_TASKS:
            fail(key, f"unknown target task {value!r}; known: {', '.join(TARGET_TASKS)}")
        return str(value)
    param = earlier[ref]
    if ref == INTERMEDIATE_TASK:
        value = mixture(value, key)
    if not param.contains(value):
        fail(key, f"{value!r} is not a value {ref} can take")
    return typing.cast(Choice, value)


def _parse_points(raw: Any, params: tuple[Param, ...]) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list):
        fail("points_to_evaluate", f"must be a list of mappings, got {type(raw).__name__}")
    by_name = {param.name: param for param in params}
    points = []
    for index, point in enumerate(raw):
        key = f"points_to_evaluate[{index}]"
        point = mapping(point, key)
        check_keys(point, tuple(by_name), key)
        normalised = {}
        for name, value in point.items():
            if name == INTERMEDIATE_TASK:
                value = mixture(value, f"{key}.{name}")
            if not by_name[name].contains(value):
                fail(f"{key}.{name}", f"{value!r} is outside the parameter's distribution")
            normalised[name] = value
        for name in normalised:
            for condition in by_name[name].when:
                if condition.key in normalised and not condition.holds(normalised):
                    fail(
                        f"{key}.{name}",
                        f"is set but its `when` on {condition.key} does not hold in this point",
                    )
        points.append(normalised)
    return tuple(points)


def _parse_tuner(raw: Any) -> TunerSettings:
    raw = dict(mapping(raw, "tuner"))
    raw["scheduler"] = _scheduler_fields(raw.get("scheduler", {"type": "fifo"}))
    return typing.cast(TunerSettings, from_dict(TunerSettings, raw, "tuner"))


def _scheduler_fields(raw: Any) -> dict[str, Any]:
    """The scheduler section as fields of ``SchedulerSettings``: the shorthand expanded, keys checked per type."""
    key = "tuner.scheduler"
    if isinstance(raw, str):  # shorthand: `scheduler: fifo`
        raw = {"type": raw}
    raw = mapping(raw, key)
    kind = raw.get("type", "fifo")
    if kind not in _SCHEDULER_KEYS:
        fail(f"{key}.type", f"must be asha or fifo, got {kind!r}")
    check_keys(raw, _SCHEDULER_KEYS[kind], key)
    return raw
