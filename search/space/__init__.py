"""Search spaces as YAML data: the schema, its typed loader and the Optuna define-by-run function.

A space file (``spaces/*.yaml``; every key is checked, an unknown key anywhere is an error)::

    name: demo                    # study-name stem; target T's study is "<name>.<T>" (default: file stem)
    description: ...              # free text
    targets: [pawsx, udpos]       # XTREME targets: one Optuna study per target, the target fixed inside it
    num_layers: 24                # optional: encoder layer count where trainers/encoders.py does not know the
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

The package: ``_params`` (names, parameters, Tune settings), ``_space`` (``SearchSpace`` and the define-by-run
function), ``_loading`` (the file and its sections), ``_checks`` (cross-checks of a loaded space). Everything
public is re-exported here.
"""

from search.space._loading import SEARCHABLE_KEYS, encoder_layers, load_space, space_from_dict
from search.space._params import (
    DEFAULT_METRIC,
    INTERMEDIATE_TASK,
    LAYERS,
    MIXTURE_SEPARATOR,
    NO_INTERMEDIATE,
    REFINE_MODES,
    SPACES_DIR,
    TARGET,
    TARGET_TASK,
    CategoricalParam,
    Choice,
    Condition,
    FloatParam,
    IntParam,
    Param,
    SchedulerSettings,
    SpaceError,
    TunerSettings,
)
from search.space._space import DefineByRun, SearchSpace, enumerate_points
from trainers.encoders import KNOWN_LAYER_COUNTS as ENCODER_LAYERS

__all__ = [
    "DEFAULT_METRIC",
    "ENCODER_LAYERS",
    "INTERMEDIATE_TASK",
    "LAYERS",
    "MIXTURE_SEPARATOR",
    "NO_INTERMEDIATE",
    "REFINE_MODES",
    "SEARCHABLE_KEYS",
    "SPACES_DIR",
    "TARGET",
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
    "enumerate_points",
    "load_space",
    "space_from_dict",
]
