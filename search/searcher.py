"""xstilts's searcher: the space's Optuna TPE, as Ray Tune's ``OptunaSearch``, with rules for a priced space.

Before a proposal becomes a trial, the ``Proposer`` applies these rules, in order:

1. **Enqueued points first** (``points_to_evaluate``, and with ``--warm-start`` an earlier search's best),
   as written. With ``--warm-start`` the studies of the other targets, which run at the same time, are
   read before each proposal: the intermediate settings of each one's ``WARM_START_TOP`` best finished
   trials (``study_leaders``) that this study has not tried yet are enqueued as they appear (partial
   points: TPE fills the target phase's parameters).
2. **Refine around the incumbent** (``tuner.refine``, default ``any``): while the study's best
   finished trial has untried neighbours (its configuration with one parameter changed), the next trial
   is one of them, at random. ``cheap_first`` is the cost-aware variant: the neighbours whose
   intermediate checkpoint is already trained (or being trained, by any target's trial or an earlier
   search sharing the cache) come first, since they cost a target phase while a neighbour that needs
   a new intermediate configuration also costs that training; a new intermediate configuration is
   then trained only once the trained ones around the incumbent are used up (none of them beat it),
   or when TPE proposes one. ``off`` leaves every trial to TPE. On the recorded grid, where an
   intermediate training costs one to three target phases, ``any`` reaches the grid's best more
   often (benchmarks/RESULTS.md); where intermediate training dominates, ``cheap_first`` saves it.
3. **TPE proposes, and never a configuration twice.** In a space of few discrete points TPE proposes
   configurations it has already tried (on the recorded grid's 207-point space, a quarter of its
   trials). A repeat is told to Optuna as failed (the sampler ignores failed trials) and TPE asks
   again; after ``MAX_REDRAWS`` repeats in a row the proposer takes an untried point nearest to TPE's
   last proposal, cheap ones first. A space with a continuous parameter is not enumerated: there, the
   last proposal is kept. When every point of a discrete space has been tried the study ends.

The proposer keeps no state of its own: what was tried, and which trials finished (not stopped early
by the scheduler), is read from the Optuna study, so a resumed search continues with the same rules.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict

from search.concurrency import gate_for
from search.space import (
    INTERMEDIATE_TASK,
    NO_INTERMEDIATE,
    TARGET_TASK,
    SearchSpace,
    enumerate_points,
)
from trainers import keys

if TYPE_CHECKING:
    import optuna

MAX_REDRAWS = 8
"""Repeated proposals TPE may make in a row before the proposer picks an untried point itself."""
MAX_ENUMERATED = 100_000
"""A discrete space with more points than this is treated as continuous (not enumerated)."""
FINISHED_ATTR = "xstilts:finished"
"""Optuna user attribute of a trial that ran to its end (not stopped by the scheduler)."""
WARM_START_TOP = 2
"""How many of a study's best distinct intermediate settings a warm-started study tries first."""

IntermediatePart = tuple[tuple[str, Any], ...]
"""What decides a trial's intermediate checkpoint (``intermediate_part``)."""


def intermediate_part(params: Mapping[str, Any]) -> IntermediatePart:
    """A flat point's intermediate task and ``intermediate.*`` values, sorted: equal for one checkpoint."""
    return tuple(
        sorted((k, v) for k, v in params.items() if k == INTERMEDIATE_TASK or k.startswith("intermediate."))
    )


def point_key(params: Mapping[str, Any]) -> Hashable:
    """A flat point as a hashable value (the same configuration gives the same key)."""
    return tuple(sorted(params.items()))


def discrete_points(space: SearchSpace, target: str) -> list[dict[str, Any]] | None:
    """Every flat point ``target``'s study can suggest, or None when a parameter is continuous or too many."""
    return enumerate_points(space, target, MAX_ENUMERATED)


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that ran to their end with a value, best first (ties: the earlier first)."""
    import optuna

    done = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if trial.user_attrs.get(FINISHED_ATTR) and trial.value is not None
    ]
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return sorted(done, key=lambda trial: (sign * float(trial.value or 0.0), trial.number))


def study_leaders(study: optuna.Study, top: int = WARM_START_TOP) -> list[dict[str, Any]]:
    """The intermediate settings (task and ``intermediate.*``) of the study's best finished trials, distinct."""
    leaders: list[dict[str, Any]] = []
    for trial in finished_trials(study):
        point = dict(intermediate_part(trial.params))
        if point and point not in leaders:
            leaders.append(point)
        if len(leaders) == top:
            break
    return leaders


def suggestable(space: SearchSpace, target: str, point: Mapping[str, Any]) -> bool:
    """Whether ``target``'s study in ``space`` can suggest ``point`` (a partial point: the rest left to TPE).

    Every key is a searched parameter active for the point, every value one the parameter allows, and the
    configuration is valid (e.g. a point from an earlier search whose space was different).
    """
    for key, value in point.items():
        try:
            if not space.param(key).contains(value):
                return False
        except KeyError:
            return False
    if space._filter_point(point, target) != dict(point):
        return False  # a parameter whose conditions the point's own values switch off
    try:
        space.to_transfer_config(point, target)
    except ValueError:  # SpaceError, ConfigError: a value this space's configuration cannot run
        return False
    return True


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """How many parameters two flat points set differently (one sets, the other not, counts)."""
    return sum(1 for k in set(a) | set(b) if k not in a or k not in b or a[k] != b[k])


@dataclass
class Proposer:
    """Turns TPE's proposals into trials under the rules of this module; one per target's study."""

    space: SearchSpace
    """The space."""
    target: str
    """The study's target."""
    available: Callable[[IntermediatePart], bool]
    """Whether an intermediate checkpoint is trained or being trained (besides this study's own trials)."""
    refine: str = "any"
    """``tuner.refine``."""
    seed: int | None = None
    """Seeds the choice among equal points (with the study's trial count, so a resumed study continues)."""
    warm_from: tuple[str, ...] = ()
    """Studies in the same storage whose leaders this study tries first (``--warm-start``: the other targets')."""

    def __post_init__(self) -> None:
        self._points = discrete_points(self.space, self.target)

    def propose(self, study: optuna.Study) -> tuple[optuna.Trial, dict[str, Any]] | None:
        """The next trial and its flat point, or None when every point of a discrete space was tried."""
        import optuna

        states = optuna.trial.TrialState
        if getattr(self, "warm_from", ()):  # a proposer pickled before the field existed has none
            self.enqueue_leaders(study)
        if study.get_trials(deepcopy=False, states=(states.WAITING,)):
            return self._ask(study)  # rule 1
        tried, incumbent = self._history(study)
        rng = random.Random(f"{self.seed}-{len(study.get_trials(deepcopy=False))}")
        trained = self._trained(study)
        if incumbent is not None and self._points is not None and self.refine != "off":  # rule 2
            near = [p for p in self._points if point_key(p) not in tried and differences(p, incumbent) == 1]
            if self.refine == "cheap_first":
                near = [p for p in near if not self.needs_training(p, trained)] or near
            if near:
                return self._ask(study, rng.choice(near))
        last: dict[str, Any] = {}
        for _ in range(MAX_REDRAWS):  # rule 3
            trial = study.ask()
            params = self._suggest(trial)
            if point_key(params) not in tried:
                return trial, params
            study.tell(trial, state=states.FAIL)  # left out of the sampler's model: the next ask is fresh
            last = params
        if self._points is None:
            return self._ask(study, last)
        untried = [p for p in self._points if point_key(p) not in tried]
        if not untried:
            return None
        nearest = min(differences(p, last) for p in untried)
        near = [p for p in untried if differences(p, last) == nearest]
        near = [p for p in near if not self.needs_training(p, trained)] or near
        return self._ask(study, rng.choice(near))

    def enqueue_leaders(self, study: optuna.Study) -> list[dict[str, Any]]:
        """Enqueue the other studies' leaders whose intermediate settings this study has not tried or queued.

        Only settings this target's study can suggest are taken (a space may condition them on the target).
        """
        import optuna

        states = optuna.trial.TrialState
        seen = {
            intermediate_part(t.params)
            for t in study.get_trials(deepcopy=False)
            if t.state not in (states.FAIL, states.WAITING)
        }
        for waiting in study.get_trials(deepcopy=False, states=(states.WAITING,)):
            seen.add(intermediate_part(waiting.system_attrs.get("fixed_params", {})))
        added: list[dict[str, Any]] = []
        for name in self.warm_from:
            try:
                # The same storage (and engine) as this study's: Optuna keeps it on the study.
                other = optuna.load_study(study_name=name, storage=study._storage)
            except KeyError:
                continue  # that target's study has not started yet
            for leader in study_leaders(other):
                part = intermediate_part(leader)
                if part in seen or not suggestable(self.space, self.target, leader):
                    continue
                study.enqueue_trial(leader)
                seen.add(part)
                added.append(leader)
        return added

    def needs_training(self, params: Mapping[str, Any], trained: set[IntermediatePart]) -> bool:
        """Whether a trial of ``params`` would have to train its intermediate checkpoint."""
        if params.get(INTERMEDIATE_TASK, NO_INTERMEDIATE) == NO_INTERMEDIATE:
            return False
        part = intermediate_part(params)
        return part not in trained and not self.available(part)

    # -- internals -------------------------------------------------------------------------------

    def _history(self, study: optuna.Study) -> tuple[set[Hashable], dict[str, Any] | None]:
        """The configurations tried (any trial but a rejected proposal), and the best finished one's."""
        import optuna

        states = optuna.trial.TrialState
        tried: set[Hashable] = set()
        best: tuple[float, dict[str, Any]] | None = None
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        for trial in study.get_trials(deepcopy=False):
            if trial.state == states.FAIL:
                continue  # a rejected repeat, or a trial that failed while running: it may run again
            tried.add(point_key(trial.params))
            if (
                trial.state == states.COMPLETE
                and trial.user_attrs.get(FINISHED_ATTR)
                and trial.value is not None
            ) and (best is None or sign * trial.value > sign * best[0]):
                best = (trial.value, dict(trial.params))
        return tried, best[1] if best else None

    def _trained(self, study: optuna.Study) -> set[IntermediatePart]:
        """The intermediate checkpoints this study's trials trained or train."""
        import optuna

        states = optuna.trial.TrialState
        running = (states.RUNNING, states.COMPLETE, states.PRUNED)
        return {intermediate_part(t.params) for t in study.get_trials(deepcopy=False, states=running)}

    def _ask(
        self, study: optuna.Study, point: Mapping[str, Any] | None = None
    ) -> tuple[optuna.Trial, dict[str, Any]]:
        if point is not None:
            study.enqueue_trial(dict(point))
        trial = study.ask()
        return trial, self._suggest(trial)

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return self.space._assign(self.target, lambda param: param.suggest(trial))


@dataclass(frozen=True)
class CachedCheckpoints:
    """``Proposer.available`` of a search: the checkpoint is published in the shared cache or leased to a trainer.

    Any target's trials, and earlier searches with the same cache, count: a checkpoint trained for one
    target costs the others nothing.
    """

    space: SearchSpace
    """The space."""
    target: str
    """The study's target (its base settings decide the checkpoint's key with the intermediate values)."""
    cache_root: str
    """The intermediate-checkpoint cache."""

    def __call__(self, part: IntermediatePart) -> bool:
        """Whether the checkpoint of ``part`` exists or is being trained."""
        from trainers.checkpoint_cache import CheckpointCache, intermediate_key, intermediate_run

        config = self.space.to_transfer_config(dict(part), self.target)
        if config.intermediate is None:
            return True
        cache = CheckpointCache(self.cache_root)
        if cache.lookup(intermediate_key(config)) is not None:
            return True
        return cache.lease_info(intermediate_key(intermediate_run(config))) is not None

    def published(self, part: IntermediatePart) -> bool:
        """Whether the checkpoint of ``part`` is in the cache (no intermediate phase: nothing to wait for)."""
        from trainers.checkpoint_cache import CheckpointCache, intermediate_key

        config = self.space.to_transfer_config(dict(part), self.target)
        if config.intermediate is None:
            return True
        return CheckpointCache(self.cache_root).lookup(intermediate_key(config)) is not None

    def being_trained(self, part: IntermediatePart) -> bool:
        """Whether the checkpoint of ``part`` is not published yet and a live lease says a trial trains it."""
        import time

        from trainers.checkpoint_cache import CheckpointCache, intermediate_key, intermediate_run

        if self.published(part):
            return False
        config = self.space.to_transfer_config(dict(part), self.target)
        lease = CheckpointCache(self.cache_root).lease_info(intermediate_key(intermediate_run(config)))
        return lease is not None and not lease.expired(time.time(), grace_s=0.0)


class PhaseAwareOptunaSearch(OptunaSearch):
    """OptunaSearch for xstilts trials: phase-1 reports and resumed, already-told trials are skipped.

    Reports made before the target phase carry no target metric yet. After ``--resume``, Tune may
    re-run a trial that finished just after its last experiment snapshot; its Optuna trial is already
    complete in the RDB, and telling it again would fail the whole search.
    """

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward results that hold the metric, for trials Optuna has not closed."""
        if self.metric in result:
            with contextlib.suppress(UpdateFinishedTrialError):
                super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell Optuna the outcome, unless it already knows it."""
        with contextlib.suppress(UpdateFinishedTrialError):
            super().on_trial_complete(trial_id, result=result, error=error)


class ProposingOptunaSearch(PhaseAwareOptunaSearch):
    """The searcher of every xstilts study: trials come from a ``Proposer`` instead of a bare ``ask``.

    With ``gate`` (a search's key, ``search/concurrency.py``), a proposal waits for one of the search's
    trial slots, which all its targets' studies share.

    With ``hold_waiting`` (a study whose trials run their one worker in the trial's own actor, which Tune
    gives the worker's GPU for the trial's whole life), a proposal whose intermediate checkpoint another
    trial is training (a live lease on the cache, or a running trial of this study with the same
    intermediate settings) is held back instead of becoming a trial that would wait for it on a GPU: the
    study proposes nothing until the checkpoint is published (or the lease lapses), and its slot goes to
    the other studies meanwhile. Trials that start a Ray Train job wait on a sliver of a CPU; theirs are
    not held.
    """

    def __init__(
        self, proposer: Proposer, gate: str | None = None, hold_waiting: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._proposer = proposer
        self._gate = gate
        self._hold_waiting = hold_waiting
        self._held: tuple[optuna.Trial, dict[str, Any]] | None = None

    @property
    def study_name(self) -> str:
        """The Optuna study's name (the gate's name for this study)."""
        return str(self._study_name)

    def live_trials(self) -> int:
        """Trials proposed (or restored by ``--resume``) and not yet completed."""
        return len(set(self._ot_trials) - self._completed_trials)

    def suggest(self, trial_id: str) -> dict[Any, Any] | None:
        """The next configuration (a resumed trial keeps its own); FINISHED when the space is used up;
        None (Tune asks again) while the search's trial slots are all taken."""
        if trial_id in self._ot_trials or self._ot_study is None:
            return super().suggest(trial_id)
        held = getattr(self, "_held", None)  # searchers pickled before these fields have neither
        gate = gate_for(getattr(self, "_gate", None))
        stopping = (
            gate is not None and gate.stopping
        )  # let Tune's loop reach its stop check (SlotGate.stopping)
        if held is not None and not stopping and self._must_wait(held[1]):
            if gate is not None:
                gate.withdraw(self.study_name)
            return None
        if gate is not None and not gate.take(self.study_name, self.live_trials()):
            return None
        if held is not None:
            self._held = None
            trial, params = held
        else:
            proposed = self._proposer.propose(self._ot_study)
            if proposed is None:
                if gate is not None:
                    gate.update(self.study_name, self.live_trials())
                    gate.finish(self.study_name)
                return (
                    Searcher.FINISHED
                )  # Tune's documented "no more trials" (typed as a dict by the base class)
            trial, params = proposed
            if getattr(self, "_hold_waiting", False) and not stopping and self._must_wait(params):
                self._held = (trial, params)
                if gate is not None:  # the slot it took is not used
                    gate.update(self.study_name, self.live_trials())
                    gate.withdraw(self.study_name)
                return None
        self._ot_trials[trial_id] = trial
        return unflatten_dict({**params, TARGET_TASK: self._proposer.target})

    def _must_wait(self, params: dict[str, Any]) -> bool:
        """Whether a trial of ``params`` would wait for another trial's intermediate checkpoint."""
        if params.get(INTERMEDIATE_TASK, NO_INTERMEDIATE) == NO_INTERMEDIATE:
            return False
        part = intermediate_part(params)
        running = {
            intermediate_part(trial.params)
            for trial_id, trial in self._ot_trials.items()
            if trial_id not in self._completed_trials
        }
        available = self._proposer.available
        if part in running:
            # A running trial of this study trains it, unless it was published before that trial started.
            return not (isinstance(available, CachedCheckpoints) and available.published(part))
        return isinstance(available, CachedCheckpoints) and available.being_trained(part)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward the result; a resumed study's restored trials count in the gate from their first report."""
        super().on_trial_result(trial_id, result)
        gate = gate_for(getattr(self, "_gate", None))
        if gate is not None:
            gate.update(self.study_name, self.live_trials())

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Mark a trial that ran to its end (its value is final), then tell Optuna."""
        trial = self._ot_trials.get(trial_id)
        if trial is not None and result and result.get(keys.FINISHED) == 1.0 and not error:
            with contextlib.suppress(UpdateFinishedTrialError):
                trial.set_user_attr(FINISHED_ATTR, True)
        super().on_trial_complete(trial_id, result=result, error=error)
        gate = gate_for(getattr(self, "_gate", None))
        if gate is not None:  # its slot is free
            gate.update(self.study_name, self.live_trials())


__all__ = [
    "FINISHED_ATTR",
    "MAX_REDRAWS",
    "WARM_START_TOP",
    "CachedCheckpoints",
    "PhaseAwareOptunaSearch",
    "Proposer",
    "ProposingOptunaSearch",
    "differences",
    "discrete_points",
    "finished_trials",
    "intermediate_part",
    "point_key",
    "study_leaders",
    "suggestable",
]
