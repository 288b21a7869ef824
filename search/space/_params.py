"""The typed pieces of a space: its names, the error, conditions, the three parameter kinds, Tune settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from trainers import keys
from trainers._fromdict import is_int, is_number
from trainers.errors import UserError

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
REFINE_MODES = ("any", "cheap_first", "off")
"""The values of ``tuner.refine``: how the searcher tries the best trial's neighbours (``search/searcher.py``)."""
DEFAULT_METRIC = keys.EN_DEV
"""The metric studies optimise unless ``tuner.metric`` says otherwise."""
SPACES_DIR = Path(__file__).resolve().parent.parent.parent / "spaces"
"""Where the shipped spaces live; ``load_space("demo")`` looks here."""

Choice = str | int | float | bool | None
"""A categorical choice as Optuna takes it."""


class SpaceError(UserError, ValueError):
    """A search space that cannot be used; the message is one line naming the file and the dotted key."""


def fail(key: str, message: str) -> NoReturn:
    """Raise a ``SpaceError`` for dotted ``key`` (the loader prefixes the file)."""
    raise SpaceError(f"{key}: {message}" if key else message)


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
        return is_number(value) and self.low <= value <= self.high

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
        return is_int(value) and self.low <= value <= self.high and (value - self.low) % self.step == 0

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
    time_attr: str = keys.TARGET_STEP
    """ASHA: the result key that measures progress (``target_step``: the target phase's optimizer steps)."""

    def __post_init__(self) -> None:
        if self.type not in ("asha", "fifo"):
            fail("tuner.scheduler.type", f"must be asha or fifo, got {self.type!r}")
        if self.grace_period < 1:
            fail("tuner.scheduler.grace_period", f"must be >= 1, got {self.grace_period}")
        if self.reduction_factor <= 1:
            fail("tuner.scheduler.reduction_factor", f"must be > 1, got {self.reduction_factor}")
        if self.max_t < self.grace_period:
            fail("tuner.scheduler.max_t", f"must be >= grace_period ({self.grace_period}), got {self.max_t}")


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
    refine: str = "any"
    """Untried neighbours of the best finished trial before TPE's proposals (``search/searcher.py``): ``any``;
    ``cheap_first`` (those on trained intermediate checkpoints first); ``off`` (TPE alone)."""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            fail("tuner.num_samples", f"must be >= 1, got {self.num_samples}")
        if not self.metric:
            fail("tuner.metric", "must not be empty")
        if self.mode not in ("max", "min"):
            fail("tuner.mode", f"must be max or min, got {self.mode!r}")
        if self.sampler_seed is not None and self.sampler_seed < 0:
            fail("tuner.sampler_seed", f"must be >= 0, got {self.sampler_seed}")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            fail("tuner.max_concurrent_trials", f"must be >= 1, got {self.max_concurrent_trials}")
        if self.refine not in REFINE_MODES:
            fail("tuner.refine", f"must be one of {', '.join(REFINE_MODES)}, got {self.refine!r}")
