"""Search spaces as YAML data: the schema, its typed loader and the Optuna define-by-run function.

A space file (``spaces/*.yaml``; every key is checked, an unknown key anywhere is an error)::

    name: demo                    # study-name stem; target T's study is "<name>.<T>" (default: file stem)
    description: ...              # free text
    targets: [pawsx, udpos]       # XTREME targets: one Optuna study per target, the target fixed inside it
    num_layers: 24                # optional: encoder layer count where ENCODER_LAYERS does not know the
                                  #   encoder; an int (every encoder of the space) or {encoder: int}
    base:                         # a partial TransferConfig dict that every trial starts from; no
      model: {name_or_path: tiny} #   target.task (set per study) and no intermediate.tasks when
      target: {max_steps: 40}     #   intermediate_task is searched; searched keys override it
    search:                       # ORDERED: parameters are suggested in this order
      <param>:                    # `intermediate_task` or a dotted TransferConfig key (target.learning_rate)
        type: categorical         # categorical | float | int
        choices: [none, mnli, [mnli, qqp]]   # categorical: str, int, float, bool or null; for
                                  #   intermediate_task: none, a task, or a list of tasks (mixture "mnli+qqp")
        low: 1e-5                 # float, int
        high: 1e-3                # float, int; an int's high may be `layers` (the encoder's layer count)
        log: true                 # float, int: log scale (needs low > 0)
        step: 2                   # int only; (high - low) must be a multiple of it
        when: {intermediate_task: {not: none}}   # optional: suggested only when every entry holds
    points_to_evaluate:           # tried first, in this order (the no-intermediate baseline first);
      - {intermediate_task: none, target.learning_rate: 1e-3}   # partial points: the sampler fills the rest
    tuner:
      num_samples: 6              # trials per target study
      metric: en_dev              # the reported metric the studies optimise (English dev score)
      mode: max                   # max | min
      scheduler: {type: asha, grace_period: 1, reduction_factor: 2, max_t: 4}   # or fifo (the default)
      sampler_seed: 0             # TPE seed (null: random)
      max_concurrent_trials: 2    # optional

``when`` maps a key to a condition; the key is a parameter declared *earlier* in ``search`` or ``target`` (the
study's fixed target). Conditions: ``value`` (equal), ``{not: value}``, ``{in: [values]}``,
``{not_in: [values]}``. A condition on a parameter that was not suggested is false. Retrieval targets (bucc,
tatoeba) have no target phase, so every ``target.*`` parameter must be excluded for them, e.g.
``when: {target: {not_in: [bucc, tatoeba]}}``.

``layers`` is the smallest layer count among the encoders the space may use (base ``model.name_or_path`` or
the choices of a searched ``model.name_or_path``), so a freeze depth is valid for every encoder; a
``*.freeze_depth`` above that count is an error. Numbers like ``1e-4`` are read as floats (YAML 1.2),
not as the strings PyYAML would make of them.

Points are *flat*, as Tune hands a trial its config: ``{"intermediate_task": "mnli+qqp",
"target.learning_rate": 1e-3, ..., "target.task": "pawsx"}`` (``target.task`` is the constant the
define-by-run function returns). ``SearchSpace.to_transfer_config`` turns one into a ``TransferConfig``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import yaml

from search.checks import check_search_name
from trainers.config import ConfigError, ModelConfig, TransferConfig
from trainers.errors import UserError
from trainers.tasks import INTERMEDIATE_TASK_NAMES, TARGET_TASKS, get_task

if TYPE_CHECKING:  # optuna is only needed for the annotation; keep importing this module cheap
    import optuna

INTERMEDIATE_TASK = "intermediate_task"
"""The flat key of the searched intermediate task (a task, a mixture "a+b", or ``none``)."""
NO_INTERMEDIATE = "none"
"""The ``intermediate_task`` choice that skips the intermediate phase."""
MIXTURE_SEPARATOR = "+"
"""Joins the tasks of a mixture into one categorical choice (Optuna choices must be primitives)."""
TARGET_TASK = "target.task"
"""The constant the define-by-run function returns: the study's fixed target."""
TARGET = "target"
"""The ``when`` key that refers to the study's target."""
LAYERS = "layers"
"""An int parameter's ``high`` that means "the encoder's layer count"."""
DEFAULT_METRIC = "en_dev"
"""The metric studies optimise unless ``tuner.metric`` says otherwise."""
SPACES_DIR = Path(__file__).resolve().parent.parent / "spaces"
"""Where the shipped spaces live; ``load_space("demo")`` looks here."""

ENCODER_LAYERS: dict[str, int] = {
    "tiny": 2,
    "minilm": 6,
    "me5-small": 12,
    "xlm-roberta-base": 12,
    "xlm-roberta-large": 24,
    "bert-base-multilingual-cased": 12,
    "bert-base-multilingual-uncased": 12,
    "distilbert-base-multilingual-cased": 6,
    "mdeberta-v3-base": 12,
    "mt5-small": 8,
    "mt5-base": 12,
    "mt5-large": 24,
}
"""Encoder layer counts by model name, matched on the part after the last "/" (google/mt5-base: mt5-base)."""

Choice = str | int | float | bool | None
"""A categorical choice as Optuna takes it."""


class SpaceError(UserError, ValueError):
    """A search space that cannot be used; the message is one line naming the file and the dotted key."""


def _fail(key: str, message: str) -> NoReturn:
    raise SpaceError(f"{key}: {message}" if key else message)


# -- the typed space -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One ``when`` entry: the value of an earlier parameter (or the target) is (not) among ``values``."""

    key: str
    """A parameter declared earlier in ``search``, or ``target``."""
    values: tuple[Choice, ...]
    """The values compared against."""
    negate: bool = False
    """True for ``not`` / ``not_in``."""

    def holds(self, assigned: Mapping[str, Any]) -> bool:
        """Whether the condition is true for the values assigned so far (false if ``key`` has none)."""
        if self.key not in assigned:
            return False
        return (assigned[self.key] in self.values) != self.negate


@dataclass(frozen=True)
class CategoricalParam:
    """A parameter drawn from a list of choices."""

    name: str
    """Flat key: ``intermediate_task`` or a dotted TransferConfig key."""
    choices: tuple[Choice, ...]
    """The choices, in file order (mixtures already joined: ``mnli+qqp``)."""
    when: tuple[Condition, ...] = ()
    """Suggested only when all of these hold."""

    def suggest(self, trial: Any) -> Any:
        """Ask the trial for a value."""
        return trial.suggest_categorical(self.name, self.choices)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the choices (type-exact, so 1 is not True)."""
        return any(type(value) is type(choice) and value == choice for choice in self.choices)

    def corner(self, side: int) -> Any:
        """The first (side 0) or last (side 1) choice, for validation."""
        return self.choices[-side]

    def largest(self) -> float | None:
        """The largest numeric choice (None if there is none)."""
        numbers = [c for c in self.choices if isinstance(c, int | float) and not isinstance(c, bool)]
        return max(numbers) if numbers else None


@dataclass(frozen=True)
class FloatParam:
    """A real parameter in ``[low, high]``."""

    name: str
    """Flat key: a dotted TransferConfig key."""
    low: float
    """Lower bound (inclusive)."""
    high: float
    """Upper bound (inclusive)."""
    log: bool = False
    """Sample on a log scale."""
    when: tuple[Condition, ...] = ()
    """Suggested only when all of these hold."""

    def suggest(self, trial: Any) -> Any:
        """Ask the trial for a value."""
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a number within the bounds."""
        return _is_number(value) and self.low <= value <= self.high

    def corner(self, side: int) -> Any:
        """``low`` (side 0) or ``high`` (side 1), for validation."""
        return (self.low, self.high)[side]

    def largest(self) -> float | None:
        """The upper bound."""
        return self.high


@dataclass(frozen=True)
class IntParam:
    """An integer parameter in ``[low, high]`` on a grid of ``step``."""

    name: str
    """Flat key: a dotted TransferConfig key."""
    low: int
    """Lower bound (inclusive)."""
    high: int
    """Upper bound (inclusive); a file's ``layers`` is already resolved here."""
    step: int = 1
    """Grid spacing from ``low``."""
    log: bool = False
    """Sample on a log scale (step 1 only)."""
    when: tuple[Condition, ...] = ()
    """Suggested only when all of these hold."""

    def suggest(self, trial: Any) -> Any:
        """Ask the trial for a value."""
        return trial.suggest_int(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is an integer on the grid."""
        return _is_int(value) and self.low <= value <= self.high and (value - self.low) % self.step == 0

    def corner(self, side: int) -> Any:
        """``low`` (side 0) or ``high`` (side 1), for validation."""
        return (self.low, self.high)[side]

    def largest(self) -> float | None:
        """The upper bound."""
        return self.high


Param = CategoricalParam | FloatParam | IntParam
"""One searched parameter."""


@dataclass(frozen=True)
class SchedulerSettings:
    """The Tune trial scheduler: ASHA early stopping, or FIFO (run every trial to the end)."""

    type: Literal["asha", "fifo"] = "fifo"
    """``asha`` or ``fifo``."""
    grace_period: int = 1
    """ASHA: ``time_attr`` units every trial gets before it can be stopped."""
    reduction_factor: float = 2.0
    """ASHA: keep 1/reduction_factor of the trials at each rung."""
    max_t: int = 100
    """ASHA: ``time_attr`` units after which a trial is stopped."""
    time_attr: str = "target_step"
    """ASHA: the result key that measures progress (``target_step``: the target phase's optimizer steps)."""

    def __post_init__(self) -> None:
        if self.type not in ("asha", "fifo"):
            _fail("tuner.scheduler.type", f"must be asha or fifo, got {self.type!r}")
        if self.grace_period < 1:
            _fail("tuner.scheduler.grace_period", f"must be >= 1, got {self.grace_period}")
        if self.reduction_factor <= 1:
            _fail("tuner.scheduler.reduction_factor", f"must be > 1, got {self.reduction_factor}")
        if self.max_t < self.grace_period:
            _fail("tuner.scheduler.max_t", f"must be >= grace_period ({self.grace_period}), got {self.max_t}")


@dataclass(frozen=True)
class TunerSettings:
    """How each target's study runs under Ray Tune."""

    num_samples: int = 10
    """Trials per target study (points_to_evaluate included)."""
    metric: str = DEFAULT_METRIC
    """The reported metric the study optimises."""
    mode: Literal["max", "min"] = "max"
    """Maximise or minimise ``metric``."""
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    """Early stopping."""
    sampler_seed: int | None = None
    """Seed of the TPE sampler (None: not reproducible)."""
    max_concurrent_trials: int | None = None
    """Cap on trials running at once (None: as many as the cluster's resources allow)."""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            _fail("tuner.num_samples", f"must be >= 1, got {self.num_samples}")
        if not self.metric:
            _fail("tuner.metric", "must not be empty")
        if self.mode not in ("max", "min"):
            _fail("tuner.mode", f"must be max or min, got {self.mode!r}")
        if self.sampler_seed is not None and self.sampler_seed < 0:
            _fail("tuner.sampler_seed", f"must be >= 0, got {self.sampler_seed}")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            _fail("tuner.max_concurrent_trials", f"must be >= 1, got {self.max_concurrent_trials}")


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
            _fail(self.source, f"target {target!r} is not one of the space's targets {list(self.targets)}")
        return target

    def study_name(self, target: str) -> str:
        """The Optuna/Tune study name of ``target``'s study."""
        return f"{self.name}.{self.check_target(target)}"

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
                    _fail(self.source, f"{TARGET_TASK}={value!r} but the study's target is {target!r}")
            elif key not in searched:
                _fail(self.source, f"{key}: not a searched parameter of this space ({', '.join(searched)})")
            elif key == INTERMEDIATE_TASK:
                intermediate = _mixture(value, key)
            else:
                _set_dotted(data, key, value)
        data.setdefault("target", {})["task"] = target
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


# -- loading ---------------------------------------------------------------------------------------


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
_TUNER_KEYS = ("num_samples", "metric", "mode", "scheduler", "sampler_seed", "max_concurrent_trials")
_OPERATORS = ("eq", "not", "in", "not_in")


def _leaf_keys(cls: type, prefix: str = "") -> set[str]:
    """Every dotted leaf key of a config dataclass (sections walked, ``X | None`` sections too)."""
    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            hint = inner[0] if len(inner) == 1 else hint
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            keys |= _leaf_keys(hint, f"{prefix}{f.name}.")
        else:
            keys.add(prefix + f.name)
    return keys


# target.task is fixed per study and intermediate.tasks comes from intermediate_task: neither is searched.
SEARCHABLE_KEYS: frozenset[str] = frozenset(
    (_leaf_keys(TransferConfig) - {TARGET_TASK, "intermediate.tasks"}) | {INTERMEDIATE_TASK}
)
"""The keys ``search`` accepts."""


def _parse(data: Any, source: str, default_name: str) -> SearchSpace:
    data = _mapping(data, "")
    _check_keys(data, _TOP_KEYS, "")
    name = _string(data.get("name", default_name), "name")
    try:
        check_search_name(name)
    except UserError as error:
        _fail("name", str(error))
    description = _string(data.get("description", ""), "description", allow_empty=True)
    targets = _parse_targets(data.get("targets"))
    raw_search = _mapping(data.get("search"), "search")
    base = _parse_base(data.get("base", {}), searches_intermediate=INTERMEDIATE_TASK in raw_search)
    encoders = _encoders(base, raw_search)
    layers, unknown = _smallest_layers(data.get("num_layers"), encoders)
    params = _parse_search(raw_search, targets, layers, unknown)
    points = _parse_points(data.get("points_to_evaluate", []), params)
    tuner = _parse_tuner(data.get("tuner", {}))
    space = SearchSpace(name, description, targets, base, params, points, tuner, encoders, layers, source)
    _check_freeze_depths(space)
    _check_retrieval_targets(space)
    _check_intermediate_params(space)
    _check_configs(space)
    return space


# -- small readers ---------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(key, f"{'must be' if key else 'the top level must be'} a mapping, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str):
            _fail(key, f"keys must be strings, got {name!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], key: str) -> None:
    for name in data:
        if name not in allowed:
            _fail(_join(key, name), f"unknown key; expected one of {', '.join(allowed)}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _string(value: Any, key: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        _fail(key, f"must be a non-empty string, got {value!r}")
    return value


def _int(value: Any, key: str) -> int:
    if not _is_int(value):
        _fail(key, f"must be an integer, got {value!r}")
    return int(value)


def _number(value: Any, key: str) -> float:
    if not _is_number(value):
        _fail(key, f"must be a number, got {value!r}")
    return float(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        _fail(key, f"must be true or false, got {value!r}")
    return value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    *sections, leaf = key.split(".")
    for section in sections:
        if not isinstance(node.get(section), dict):  # absent, or null (e.g. base intermediate: null)
            node[section] = {}
        node = node[section]
    node[leaf] = value


def _get_dotted(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _mixture(value: Any, key: str) -> str:
    """An intermediate_task choice as one string: ``none``, ``mnli`` or ``mnli+qqp``."""
    if isinstance(value, str):
        tasks = value.split(MIXTURE_SEPARATOR)
    elif isinstance(value, list) and value and all(isinstance(task, str) for task in value):
        tasks = list(value)
    else:
        _fail(key, f"an intermediate task choice is none, a task or a list of tasks, got {value!r}")
    if tasks == [NO_INTERMEDIATE]:
        return NO_INTERMEDIATE
    for task in tasks:
        if task not in INTERMEDIATE_TASK_NAMES:
            known = ", ".join((NO_INTERMEDIATE, *INTERMEDIATE_TASK_NAMES))
            _fail(key, f"unknown intermediate task {task!r}; known: {known}")
    if len(set(tasks)) != len(tasks):
        _fail(key, f"mixture {value!r} repeats a task")
    return MIXTURE_SEPARATOR.join(tasks)


# -- sections --------------------------------------------------------------------------------------


def _parse_targets(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        _fail("targets", f"must be a non-empty list of target tasks, got {raw!r}")
    for index, target in enumerate(raw):
        if target in INTERMEDIATE_TASK_NAMES and target not in TARGET_TASKS:
            _fail(f"targets[{index}]", f"{target} is an intermediate task, not an XTREME target")
        if target not in TARGET_TASKS:
            _fail(f"targets[{index}]", f"unknown target task {target!r}; known: {', '.join(TARGET_TASKS)}")
    if len(set(raw)) != len(raw):
        _fail("targets", "lists a target twice")
    return tuple(raw)


def _parse_base(raw: Any, searches_intermediate: bool) -> dict[str, Any]:
    base = copy.deepcopy(_mapping(raw, "base"))
    if _get_dotted(base, TARGET_TASK) is not None:
        _fail(f"base.{TARGET_TASK}", "is set per study from `targets`; remove it")
    if searches_intermediate and _get_dotted(base, "intermediate.tasks") is not None:
        _fail("base.intermediate.tasks", f"conflicts with search.{INTERMEDIATE_TASK}; remove one")
    return base


def _encoders(base: Mapping[str, Any], raw_search: Mapping[str, Any]) -> tuple[str, ...]:
    """The encoders a trial may use: the base model, or the choices of a searched model.name_or_path."""
    base_model = _get_dotted(base, "model.name_or_path")
    base_name = base_model if isinstance(base_model, str) else ModelConfig.name_or_path
    spec = raw_search.get("model.name_or_path")
    if not isinstance(spec, dict) or not isinstance(spec.get("choices"), list):
        return (base_name,)
    names = [choice for choice in spec["choices"] if isinstance(choice, str)]
    if "when" in spec:  # when the condition is false, trials keep the base model
        names.append(base_name)
    return tuple(dict.fromkeys(names))


def encoder_layers(name: str, explicit: Mapping[str, int] | None = None) -> int | None:
    """The layer count of encoder ``name``: ``explicit`` first, then ``ENCODER_LAYERS``; None if unknown."""
    if explicit and name in explicit:
        return explicit[name]
    return ENCODER_LAYERS.get(name, ENCODER_LAYERS.get(name.rstrip("/").rsplit("/", 1)[-1]))


def _smallest_layers(raw: Any, encoders: tuple[str, ...]) -> tuple[int | None, list[str]]:
    """The smallest layer count among ``encoders`` (None if any is unknown), and the unknown encoders."""
    explicit: dict[str, int] = {}
    if _is_int(raw):
        explicit = dict.fromkeys(encoders, raw)
    elif isinstance(raw, dict):
        for encoder, count in raw.items():
            if encoder not in encoders:
                _fail(f"num_layers.{encoder}", f"not an encoder of this space ({', '.join(encoders)})")
            explicit[encoder] = _int(count, f"num_layers.{encoder}")
    elif raw is not None:
        _fail("num_layers", f"must be an integer or a mapping encoder -> integer, got {raw!r}")
    for encoder, count in explicit.items():
        if count < 1:
            _fail(
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
        _fail("search", "must name at least one parameter")
    params: dict[str, Param] = {}
    for name, spec in raw.items():
        key = f"search.{name}"
        if name not in SEARCHABLE_KEYS:
            _fail(
                key,
                "not a searchable key: intermediate_task or a dotted TransferConfig key (not target.task)",
            )
        spec = _mapping(spec, key)
        kind = spec.get("type")
        if kind not in _PARAM_KEYS:
            _fail(f"{key}.type", f"must be one of {', '.join(_PARAM_KEYS)}, got {kind!r}")
        _check_keys(spec, _PARAM_KEYS[kind], key)
        when = _parse_when(spec.get("when"), f"{key}.when", params, raw, targets)
        if name == INTERMEDIATE_TASK and kind != "categorical":
            _fail(f"{key}.type", "intermediate_task must be categorical")
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
        _fail(key, f"must be a non-empty list, got {raw!r}")
    choices: list[Choice] = []
    for index, value in enumerate(raw):
        if name == INTERMEDIATE_TASK:
            choices.append(_mixture(value, f"{key}[{index}]"))
        elif value is None or isinstance(value, str | int | float | bool):
            choices.append(value)
        else:
            _fail(f"{key}[{index}]", f"must be a string, number, boolean or null, got {value!r}")
    for index, value in enumerate(choices):
        if CategoricalParam(name, tuple(choices[:index])).contains(value):
            _fail(key, f"repeats the choice {value!r}")
    return tuple(choices)


def _parse_float(name: str, spec: Mapping[str, Any], key: str, when: tuple[Condition, ...]) -> FloatParam:
    low = _number(spec.get("low"), f"{key}.low")
    high = _number(spec.get("high"), f"{key}.high")
    log = _bool(spec.get("log", False), f"{key}.log")
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
    low = _int(spec.get("low"), f"{key}.low")
    high_raw = spec.get("high")
    if high_raw == LAYERS:
        if layers is None:
            _fail(f"{key}.high", f"`layers` needs the layer count of {', '.join(unknown)}: add num_layers")
        high = layers
    else:
        high = _int(high_raw, f"{key}.high")
    step = _int(spec.get("step", 1), f"{key}.step")
    log = _bool(spec.get("log", False), f"{key}.log")
    _check_bounds(low, high, log, key)
    if step < 1:
        _fail(f"{key}.step", f"must be >= 1, got {step}")
    if log and step != 1:
        _fail(f"{key}.step", "log scale needs step 1")
    if (high - low) % step:
        _fail(f"{key}.step", f"high - low ({high} - {low}) must be a multiple of step {step}")
    return IntParam(name, low, high, step, log, when)


def _check_bounds(low: float, high: float, log: bool, key: str) -> None:
    if low >= high:
        _fail(key, f"low ({low}) must be < high ({high})")
    if log and low <= 0:
        _fail(f"{key}.low", f"log scale needs low > 0, got {low}")


def _parse_when(
    raw: Any,
    key: str,
    earlier: Mapping[str, Param],
    declared: Mapping[str, Any],
    targets: tuple[str, ...],
) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    raw = _mapping(raw, key)
    if not raw:
        _fail(key, "must hold at least one condition")
    conditions = []
    for ref, spec in raw.items():
        ref_key = f"{key}.{ref}"
        if ref != TARGET and ref not in earlier:
            where = "is declared after this parameter" if ref in declared else "is not a searched parameter"
            _fail(ref_key, f"{ref!r} {where}; conditions refer to earlier parameters or `target`")
        negate, values = _parse_operator(spec, ref_key)
        normalised = tuple(_condition_value(value, ref, earlier, ref_key) for value in values)
        conditions.append(Condition(ref, normalised, negate))
    return tuple(conditions)


def _parse_operator(spec: Any, key: str) -> tuple[bool, list[Any]]:
    """``value`` / ``{eq|not: value}`` / ``{in|not_in: [values]}`` -> (negate, values)."""
    if not isinstance(spec, dict):
        return False, [spec]
    if len(spec) != 1 or next(iter(spec)) not in _OPERATORS:
        _fail(key, f"a condition is a value or one of {{{': ..., '.join(_OPERATORS)}: ...}}, got {spec!r}")
    ((operator, value),) = spec.items()
    if operator in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            _fail(f"{key}.{operator}", f"must be a non-empty list, got {value!r}")
        return operator == "not_in", value
    return operator == "not", [value]


def _condition_value(value: Any, ref: str, earlier: Mapping[str, Param], key: str) -> Choice:
    if ref == TARGET:
        if value not in TARGET_TASKS:
            _fail(key, f"unknown target task {value!r}; known: {', '.join(TARGET_TASKS)}")
        return str(value)
    param = earlier[ref]
    if ref == INTERMEDIATE_TASK:
        value = _mixture(value, key)
    if not param.contains(value):
        _fail(key, f"{value!r} is not a value {ref} can take")
    return typing.cast(Choice, value)


def _parse_points(raw: Any, params: tuple[Param, ...]) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list):
        _fail("points_to_evaluate", f"must be a list of mappings, got {type(raw).__name__}")
    by_name = {param.name: param for param in params}
    points = []
    for index, point in enumerate(raw):
        key = f"points_to_evaluate[{index}]"
        point = _mapping(point, key)
        _check_keys(point, tuple(by_name), key)
        normalised = {}
        for name, value in point.items():
            if name == INTERMEDIATE_TASK:
                value = _mixture(value, f"{key}.{name}")
            if not by_name[name].contains(value):
                _fail(f"{key}.{name}", f"{value!r} is outside the parameter's distribution")
            normalised[name] = value
        for name in normalised:
            for condition in by_name[name].when:
                if condition.key in normalised and not condition.holds(normalised):
                    _fail(
                        f"{key}.{name}",
                        f"is set but its `when` on {condition.key} does not hold in this point",
                    )
        points.append(normalised)
    return tuple(points)


def _parse_tuner(raw: Any) -> TunerSettings:
    raw = _mapping(raw, "tuner")
    _check_keys(raw, _TUNER_KEYS, "tuner")
    defaults = TunerSettings()
    seed = raw.get("sampler_seed", defaults.sampler_seed)
    concurrent = raw.get("max_concurrent_trials", defaults.max_concurrent_trials)
    return TunerSettings(
        num_samples=_int(raw.get("num_samples", defaults.num_samples), "tuner.num_samples"),
        metric=_string(raw.get("metric", defaults.metric), "tuner.metric"),
        mode=typing.cast(Literal["max", "min"], _string(raw.get("mode", defaults.mode), "tuner.mode")),
        scheduler=_parse_scheduler(raw.get("scheduler", {"type": "fifo"})),
        sampler_seed=None if seed is None else _int(seed, "tuner.sampler_seed"),
        max_concurrent_trials=None if concurrent is None else _int(concurrent, "tuner.max_concurrent_trials"),
    )


def _parse_scheduler(raw: Any) -> SchedulerSettings:
    key = "tuner.scheduler"
    if isinstance(raw, str):  # shorthand: `scheduler: fifo`
        raw = {"type": raw}
    raw = _mapping(raw, key)
    kind = raw.get("type", "fifo")
    if kind not in _SCHEDULER_KEYS:
        _fail(f"{key}.type", f"must be asha or fifo, got {kind!r}")
    _check_keys(raw, _SCHEDULER_KEYS[kind], key)
    defaults = SchedulerSettings()
    return SchedulerSettings(
        type=kind,
        grace_period=_int(raw.get("grace_period", defaults.grace_period), f"{key}.grace_period"),
        reduction_factor=_number(
            raw.get("reduction_factor", defaults.reduction_factor), f"{key}.reduction_factor"
        ),
        max_t=_int(raw.get("max_t", defaults.max_t), f"{key}.max_t"),
        time_attr=_string(raw.get("time_attr", defaults.time_attr), f"{key}.time_attr"),
    )


# -- cross-checks ----------------------------------------------------------------------------------


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
            _fail(f"search.{param.name}.{bound}", f"{largest} is above {where}")
    for section in ("intermediate", "target"):
        fixed = _get_dotted(space.base, f"{section}.freeze_depth")
        if _is_number(fixed) and fixed > space.layers:
            _fail(f"base.{section}.freeze_depth", f"{fixed} is above {where}")


def _check_retrieval_targets(space: SearchSpace) -> None:
    """Retrieval targets skip the target phase: searching its settings there would waste trials."""
    for target in space.targets:
        if not get_task(target).is_retrieval:
            continue
        for param in space.params:
            static = [c for c in param.when if c.key == TARGET]
            if param.name.startswith("target.") and all(c.holds({TARGET: target}) for c in static):
                _fail(
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
        if task is None and _get_dotted(space.base, "intermediate.tasks") is None:
            _fail(key, f"no intermediate phase: search {INTERMEDIATE_TASK} or set base.intermediate.tasks")
        if task is not None and task.contains(NO_INTERMEDIATE):
            excluded = [
                c for c in param.when if c.key == INTERMEDIATE_TASK and not c.holds({c.key: NO_INTERMEDIATE})
            ]
            if not excluded:
                _fail(
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
        _fail(key, f"{error} (target {target}; point {point or '{}'})")


__all__ = [
    "DEFAULT_METRIC",
    "ENCODER_LAYERS",
    "INTERMEDIATE_TASK",
    "LAYERS",
    "MIXTURE_SEPARATOR",
    "NO_INTERMEDIATE",
    "SEARCHABLE_KEYS",
    "SPACES_DIR",
    "TARGET_TASK",
    "CategoricalParam",
    "Choice",
    "Condition",
    "DefineByRun",
    "FloatParam",
    "IntParam",
    "Param",
    "SchedulerSettings",
    "SearchSpace",
    "SpaceError",
    "TunerSettings",
    "encoder_layers",
    "load_space",
    "space_from_dict",
]
