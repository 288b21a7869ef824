"""The searcher's rules (search/searcher.py) on in-memory Optuna studies: no configuration twice, the
incumbent's neighbours first (cheap ones first with ``cheap_first``), and the end of a used-up space."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from search.searcher import (
    FINISHED_ATTR,
    Proposer,
    differences,
    discrete_points,
    intermediate_part,
    point_key,
)
from search.space import INTERMEDIATE_TASK, SearchSpace, space_from_dict

optuna.logging.set_verbosity(optuna.logging.WARNING)


def discrete(refine: str = "any", points: list[dict[str, Any]] | None = None) -> SearchSpace:
    """3 intermediate choices x 2 step counts (when not none) x 2 freeze depths x 3 learning rates: 30 points."""
    data: dict[str, Any] = {
        "name": "t",
        "targets": ["udpos"],
        "base": {"model": {"name_or_path": "tiny"}, "target": {"max_steps": 2}},
        "search": {
            INTERMEDIATE_TASK: {"type": "categorical", "choices": ["none", "mnli", "ccg"]},
            "intermediate.max_steps": {
                "type": "categorical",
                "choices": [30, 90],
                "when": {INTERMEDIATE_TASK: {"not": "none"}},
            },
            "target.freeze_depth": {"type": "int", "low": 0, "high": 1},
            "target.learning_rate": {"type": "categorical", "choices": [3e-4, 1e-3, 3e-3]},
        },
        "tuner": {"num_samples": 30, "sampler_seed": 0, "refine": refine},
    }
    if points:
        data["points_to_evaluate"] = points
    return space_from_dict(data)


def study(startup: int = 2, space: SearchSpace | None = None) -> optuna.Study:
    """An in-memory study as the Tune searcher makes it: the space's points enqueued first."""
    sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, n_startup_trials=startup)
    made = optuna.create_study(direction="maximize", sampler=sampler)
    for point in space.points_for("udpos") if space else []:
        made.enqueue_trial(point)
    return made


def score(params: dict[str, Any]) -> float:
    """A landscape with one best point: ccg@90, freeze 0, lr 3e-3."""
    value = {"none": 0.0, "mnli": 1.0, "ccg": 3.0}[params[INTERMEDIATE_TASK]]
    value += params.get("intermediate.max_steps", 0) / 90
    value -= params["target.freeze_depth"] + abs(params["target.learning_rate"] - 3e-3) * 100
    return value


def run(proposer: Proposer, trials: optuna.Study, n: int, finished: bool = True) -> list[dict[str, Any]]:
    """``n`` proposals told their score (marked finished, as the Tune searcher does for a full trial)."""
    seen = []
    for _ in range(n):
        proposed = proposer.propose(trials)
        if proposed is None:
            break
        trial, params = proposed
        assert params == trial.params
        if finished:
            trial.set_user_attr(FINISHED_ATTR, True)
        trials.tell(trial, score(params))
        seen.append(params)
    return seen


def never_trained(part: Any) -> bool:
    return False


def test_the_space_is_enumerated_with_its_conditions() -> None:
    points = discrete_points(discrete(), "udpos")
    assert points is not None and len(points) == (1 + 2 * 2) * 2 * 3
    assert {INTERMEDIATE_TASK: "none", "target.freeze_depth": 0, "target.learning_rate": 3e-4} in points
    assert all(("intermediate.max_steps" in p) == (p[INTERMEDIATE_TASK] != "none") for p in points)


@pytest.mark.parametrize("refine", ["any", "cheap_first", "off"])
def test_no_configuration_runs_twice_and_a_used_up_space_ends_the_study(refine: str) -> None:
    space = discrete(refine)
    trials = study()
    seen = run(Proposer(space, "udpos", never_trained, refine=refine, seed=0), trials, 40)
    assert len(seen) == 30  # every point once, then None
    assert len({point_key(p) for p in seen}) == 30
    # The repeats TPE proposed were told as failed, so its model never counted them.
    states = {t.state for t in trials.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL}


def test_the_incumbent_s_neighbours_come_first() -> None:
    start = {
        INTERMEDIATE_TASK: "mnli",
        "intermediate.max_steps": 30,
        "target.freeze_depth": 1,
        "target.learning_rate": 3e-4,
    }
    space = discrete("any", points=[start])
    trials = study(startup=10, space=space)
    proposer = Proposer(space, "udpos", never_trained, refine="any", seed=0)
    assert run(proposer, trials, 1) == [start]  # the enqueued point first
    for _ in range(6):
        finished = [t for t in trials.trials if t.state == optuna.trial.TrialState.COMPLETE]
        incumbent = max(finished, key=lambda t: t.value or 0.0).params
        params = run(proposer, trials, 1)[0]
        assert differences(params, incumbent) == 1, (params, incumbent)


def test_refinement_finds_the_best_point_of_a_smooth_landscape_in_few_trials() -> None:
    seen = run(Proposer(discrete("any"), "udpos", never_trained, refine="any", seed=0), study(), 15)
    assert max(score(p) for p in seen) == score(
        {
            INTERMEDIATE_TASK: "ccg",
            "intermediate.max_steps": 90,
            "target.freeze_depth": 0,
            "target.learning_rate": 3e-3,
        }
    )


def test_cheap_first_tries_neighbours_on_trained_checkpoints_before_new_trainings() -> None:
    start = {
        INTERMEDIATE_TASK: "mnli",
        "intermediate.max_steps": 30,
        "target.freeze_depth": 1,
        "target.learning_rate": 3e-4,
    }
    space = discrete("cheap_first", points=[start])
    trials = study(startup=10, space=space)
    proposer = Proposer(space, "udpos", never_trained, refine="cheap_first", seed=0)
    run(proposer, trials, 1)
    # Same checkpoint, other target settings: freeze 0, lr 1e-3, lr 3e-3 (the checkpoint is this study's).
    cheap = run(proposer, trials, 3)
    assert all(intermediate_part(p) == intermediate_part(start) for p in cheap)
    # A checkpoint another target or search trained counts as trained too.
    ccg = intermediate_part({INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30})
    other = Proposer(space, "udpos", lambda part: part == ccg, refine="cheap_first", seed=0)
    later = run(other, trials, 2)
    parts = {intermediate_part(p) for p in later}
    assert parts <= {intermediate_part(start), ccg, ((INTERMEDIATE_TASK, "none"),)}


def test_a_trial_stopped_early_is_no_incumbent() -> None:
    best = {
        INTERMEDIATE_TASK: "ccg",
        "intermediate.max_steps": 90,
        "target.freeze_depth": 0,
        "target.learning_rate": 3e-3,
    }
    space = discrete("any", points=[best])
    following = {}
    for finished in (True, False):
        trials = study(startup=10, space=space)
        proposer = Proposer(space, "udpos", never_trained, refine="any", seed=0)
        run(proposer, trials, 1, finished=finished)
        following[finished] = run(proposer, trials, 1)[0]
    assert differences(following[True], best) == 1  # a finished best trial: its neighbours next
    # Stopped by the scheduler, its value is partial: the next trial is TPE's, not pinned beside it.
    assert differences(following[False], best) > 1


def test_tpe_s_repeats_are_redrawn_then_replaced_by_an_untried_point() -> None:
    space = discrete("off")
    trials = study(startup=0)  # TPE from the first trial: it keeps proposing near the best
    seen = run(Proposer(space, "udpos", never_trained, refine="off", seed=0), trials, 30)
    failed = [t for t in trials.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len({point_key(p) for p in seen}) == 30 and failed
    assert all(point_key(t.params) in {point_key(p) for p in seen} for t in failed)


def test_a_continuous_space_is_not_enumerated_but_still_proposes() -> None:
    data = {
        "name": "t",
        "targets": ["udpos"],
        "base": {"model": {"name_or_path": "tiny"}, "target": {"max_steps": 2}},
        "search": {"target.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
        "tuner": {"num_samples": 3},
    }
    space = space_from_dict(data)
    assert discrete_points(space, "udpos") is None
    trials = study()
    proposer = Proposer(space, "udpos", never_trained, seed=0)
    for _ in range(5):
        proposed = proposer.propose(trials)
        assert proposed is not None
        trial, params = proposed
        trial.set_user_attr(FINISHED_ATTR, True)
        trials.tell(trial, params["target.learning_rate"])
