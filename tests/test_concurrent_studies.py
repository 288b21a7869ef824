"""Every target's study at once (search/concurrency.py) and warm starts (search/searcher.py, search/warm_start.py).

Fast tests without a cluster: the slot gate's sharing, the leaders one study takes from the others in the
same storage, and an earlier search's points; the replayed driver runs them in tests/test_replay.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from search.concurrency import WANT_S, SlotGate
from search.layout import SearchLayout
from search.searcher import FINISHED_ATTR, Proposer, study_leaders
from search.space import INTERMEDIATE_TASK, SearchSpace, space_from_dict
from search.warm_start import WarmStartError, earlier_points

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space(
    choices: tuple[str, ...] = ("none", "mnli", "ccg"), lrs: tuple[float, ...] = (1e-3, 3e-3)
) -> SearchSpace:
    """Two targets; intermediate task x steps (30, 90; not for none) x target learning rate."""
    return space_from_dict(
        {
            "name": "t",
            "targets": ["udpos", "panx"],
            "base": {"model": {"name_or_path": "tiny"}, "target": {"max_steps": 2}},
            "search": {
                INTERMEDIATE_TASK: {"type": "categorical", "choices": list(choices)},
                "intermediate.max_steps": {
                    "type": "categorical",
                    "choices": [30, 90],
                    "when": {INTERMEDIATE_TASK: {"not": "none"}},
                },
                "target.learning_rate": {"type": "categorical", "choices": list(lrs)},
            },
            "tuner": {"num_samples": 10, "sampler_seed": 0},
        }
    )


def finish(study: optuna.Study, params: dict[str, Any], value: float, finished: bool = True) -> None:
    """A trial of ``params`` told ``value`` (marked finished as the Tune searcher marks a full trial)."""
    study.enqueue_trial(params)
    trial = study.ask()
    for key in params:  # the enqueued values, through the space's distributions (as the real study has them)
        space().param(key).suggest(trial)
    if finished:
        trial.set_user_attr(FINISHED_ATTR, True)
    study.tell(trial, value)


# -- the slot gate -------------------------------------------------------------------------------


def test_the_gate_never_runs_more_trials_than_its_slots() -> None:
    gate = SlotGate(3, ("a", "b"))
    assert gate.take("a", 0) and gate.take("b", 0) and gate.take("a", 1)
    assert not gate.take("b", 1)  # three run: the cluster holds no fourth
    assert not gate.take("a", 2)
    assert sum(gate.live().values()) == 3
    gate.update("a", 1)  # one of a's trials ended
    assert gate.take("b", 1)  # both run one now, and b was served less recently: the slot is b's
    assert sum(gate.live().values()) == 3


def test_once_the_search_stops_every_request_is_granted() -> None:
    """Tune's loop only sees its stop event once the searcher of a study running nothing proposes a trial."""
    import threading

    stop = threading.Event()
    gate = SlotGate(1, ("a", "b"), stop=stop)
    assert gate.take("a", 0) and not gate.take("b", 0)
    stop.set()
    assert gate.take("b", 0)


def test_a_freed_slot_goes_to_the_waiting_study_with_fewer_trials_then_by_turn() -> None:
    gate = SlotGate(1, ("a", "b"))
    assert not gate.take("b", 0)  # a comes first in target order and has not asked yet
    assert gate.take("a", 0)
    order = []
    for _ in range(6):  # one slot: each study's trial ends, both ask again, the other one gets it
        running = max(gate.live(), key=lambda s: gate.live()[s])
        gate.update(running, 0)
        for study in (running, "b" if running == "a" else "a"):
            if gate.take(study, 0):
                order.append(study)
    assert order == ["b", "a", "b", "a", "b", "a"]


def test_a_finished_study_no_longer_holds_the_others_back() -> None:
    now = [0.0]
    gate = SlotGate(2, ("a", "b"), clock=lambda: now[0])
    assert gate.take("a", 0)
    assert not gate.take("a", 1)  # b has not asked yet: it goes first, with fewer trials
    gate.finish("b")  # b's space was used up before it proposed anything
    assert gate.take("a", 1)
    gate = SlotGate(2, ("a", "b"), clock=lambda: now[0])
    assert gate.take("a", 0)
    now[0] = WANT_S + 1  # b never asked: after WANT_S it no longer counts as waiting
    assert gate.take("a", 1)


# -- warm start within a search ------------------------------------------------------------------


def test_a_study_takes_the_other_targets_leaders_it_has_not_tried() -> None:
    the_space = space()
    storage = optuna.storages.InMemoryStorage()
    udpos = optuna.create_study(storage=storage, study_name="s.udpos", direction="maximize")
    panx = optuna.create_study(storage=storage, study_name="s.panx", direction="maximize")
    proposer = Proposer(the_space, "panx", lambda part: False, refine="off", seed=0, warm_from=("s.udpos",))
    assert proposer.enqueue_leaders(panx) == []  # udpos has finished nothing yet
    finish(udpos, {INTERMEDIATE_TASK: "none", "target.learning_rate": 1e-3}, 50.0)
    finish(
        udpos, {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 30, "target.learning_rate": 1e-3}, 60.0
    )
    finish(
        udpos, {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 90, "target.learning_rate": 3e-3}, 70.0
    )
    finish(
        udpos,
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30, "target.learning_rate": 1e-3},
        99.0,
        False,
    )
    assert study_leaders(udpos) == [  # best finished first; the early-stopped 99 is no leader
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 90},
        {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 30},
    ]
    finish(
        panx, {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 30, "target.learning_rate": 3e-3}, 40.0
    )
    proposed = proposer.propose(panx)
    assert proposed is not None
    first, params = proposed
    assert params[INTERMEDIATE_TASK] == "ccg" and params["intermediate.max_steps"] == 90  # mnli@30: tried
    panx.tell(first, 45.0)
    assert proposer.enqueue_leaders(panx) == []  # each leader once
    assert not panx.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_leaders_the_target_cannot_suggest_are_left_out() -> None:
    storage = optuna.storages.InMemoryStorage()
    udpos = optuna.create_study(storage=storage, study_name="s.udpos", direction="maximize")
    panx = optuna.create_study(storage=storage, study_name="s.panx", direction="maximize")
    finish(
        udpos, {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 30, "target.learning_rate": 1e-3}, 60.0
    )
    narrower = space(choices=("none", "ccg"))  # panx's space has no mnli
    proposer = Proposer(
        narrower, "panx", lambda part: False, refine="off", seed=0, warm_from=("s.udpos", "s.x")
    )
    assert proposer.enqueue_leaders(panx) == []  # and a study that does not exist yet is skipped


# -- warm start from an earlier search -----------------------------------------------------------


def earlier_search(tmp_path: Path) -> SearchLayout:
    """An earlier search ``old`` under ``tmp_path``: udpos and panx studies with finished trials."""
    layout = SearchLayout("old", str(tmp_path))
    layout.local_root.mkdir(parents=True)
    storage = optuna.storages.RDBStorage(layout.optuna_url)
    udpos = optuna.create_study(storage=storage, study_name=layout.study_name("udpos"), direction="maximize")
    panx = optuna.create_study(storage=storage, study_name=layout.study_name("panx"), direction="maximize")
    finish(udpos, {INTERMEDIATE_TASK: "none", "target.learning_rate": 1e-3}, 50.0)
    finish(
        udpos, {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 30, "target.learning_rate": 3e-3}, 70.0
    )
    finish(
        udpos, {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 90, "target.learning_rate": 1e-3}, 60.0
    )
    finish(
        udpos,
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30, "target.learning_rate": 1e-3},
        90.0,
        False,
    )
    finish(panx, {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30, "target.learning_rate": 3e-3}, 80.0)
    finish(
        panx, {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 90, "target.learning_rate": 1e-3}, 75.0
    )
    return layout


def test_an_earlier_search_s_best_configurations_then_its_leaders_come_first(tmp_path: Path) -> None:
    points = earlier_points(space(), ["udpos", "panx"], earlier_search(tmp_path))
    assert points["udpos"] == [
        # udpos's two best finished configurations, as they ran
        {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 30, "target.learning_rate": 3e-3},
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 90, "target.learning_rate": 1e-3},
        # then the other target's leaders, as intermediate settings (TPE fills the rest)
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30},
        {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 90},
    ]
    assert points["panx"][:2] == [
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30, "target.learning_rate": 3e-3},
        {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 90, "target.learning_rate": 1e-3},
    ]
    assert points["panx"][2:] == [
        {INTERMEDIATE_TASK: "mnli", "intermediate.max_steps": 30},
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 90},
    ]


def test_only_points_the_new_space_allows_are_taken(tmp_path: Path) -> None:
    # No mnli, and only 1e-3: udpos's best (mnli, 3e-3) and panx's best (3e-3) cannot run in it.
    points = earlier_points(space(choices=("none", "ccg"), lrs=(1e-3,)), ["udpos"], earlier_search(tmp_path))
    assert points["udpos"] == [
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 90, "target.learning_rate": 1e-3},
        {INTERMEDIATE_TASK: "none", "target.learning_rate": 1e-3},
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30},
    ]


def test_an_unknown_earlier_search_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from search.cli import main

    with pytest.raises(WarmStartError, match="no search 'nope' under"):
        earlier_points(space(), ["udpos"], SearchLayout("nope", str(tmp_path)))
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--warm-start", "nope", "--name", "new", "--storage", "st"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xstilts: error: --warm-start nope: no search 'nope' under st")
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


# -- an in-process trial never waits for a checkpoint on its GPU ---------------------------------


def held_searcher(cache_root: Path, hold_waiting: bool = True) -> tuple[Any, SearchSpace]:
    """udpos's searcher over ccg@30 x two learning rates, both seeded (they share one checkpoint)."""
    import optuna

    from search.searcher import CachedCheckpoints, ProposingOptunaSearch
    from search.space import DefineByRun

    the_space = space(choices=("none", "ccg"))
    points = [
        {INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30, "target.learning_rate": lr}
        for lr in (1e-3, 3e-3)
    ]
    checkpoints = CachedCheckpoints(the_space, "udpos", str(cache_root))
    searcher = ProposingOptunaSearch(
        Proposer(the_space, "udpos", checkpoints, refine="off", seed=0),
        hold_waiting=hold_waiting,
        space=DefineByRun(the_space, "udpos"),
        metric="en_dev",
        mode="max",
        points_to_evaluate=points,
        sampler=optuna.samplers.TPESampler(seed=0),
        study_name="s.udpos",
        storage=optuna.storages.InMemoryStorage(),
    )
    return searcher, the_space


def test_a_proposal_that_would_wait_for_a_checkpoint_is_held_until_it_is_published(tmp_path: Path) -> None:
    from trainers.checkpoint_cache import CheckpointCache, intermediate_key, intermediate_run

    searcher, the_space = held_searcher(tmp_path / "cache")
    first = searcher.suggest("t1")
    assert first["intermediate_task"] == "ccg" and first["target.learning_rate"] == 1e-3
    # t1 trains ccg@30 (it has not taken the lease yet): a second trial of it would only wait.
    assert searcher.suggest("t2") is None
    config = the_space.to_transfer_config({INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30}, "udpos")
    cache = CheckpointCache(tmp_path / "cache")
    lease = cache.acquire(intermediate_key(intermediate_run(config)), owner="t1")
    assert lease is not None and searcher.suggest("t3") is None  # t1 holds the lease: still held
    key = intermediate_key(config)
    cache.publish(cache.staging_dir(key), key, {})
    lease.release()
    second = searcher.suggest("t4")  # published: the held proposal becomes a trial, now
    assert second["intermediate_task"] == "ccg" and second["target.learning_rate"] == 3e-3
    assert searcher.live_trials() == 2


def test_another_study_s_lease_holds_a_proposal_and_jobs_are_not_held(tmp_path: Path) -> None:
    from trainers.checkpoint_cache import CheckpointCache, intermediate_key, intermediate_run

    searcher, the_space = held_searcher(tmp_path / "cache")
    config = the_space.to_transfer_config({INTERMEDIATE_TASK: "ccg", "intermediate.max_steps": 30}, "udpos")
    lease = CheckpointCache(tmp_path / "cache").acquire(
        intermediate_key(intermediate_run(config)), owner="panx-1"
    )
    assert lease is not None
    assert searcher.suggest("t1") is None  # panx's trial trains it
    lease.release()  # (its owner died before publishing: the trial will train it itself)
    assert searcher.suggest("t2")["target.learning_rate"] == 1e-3
    # Trials that start a Ray Train job wait on a sliver of a CPU: nothing is held for them.
    jobs, _ = held_searcher(tmp_path / "cache", hold_waiting=False)
    assert jobs.suggest("t1") is not None and jobs.suggest("t2") is not None


def test_a_failing_study_stops_the_others_and_its_error_is_kept() -> None:
    """run_concurrently: one fit raises, the stop event is set, and a fit that runs until stopped ends."""
    import threading

    from search.concurrency import StudyThread, run_concurrently

    stop = threading.Event()

    def fails() -> None:
        raise RuntimeError("a study failed")

    def runs_until_stopped() -> str:
        assert stop.wait(30), "never stopped"
        return "stopped"

    studies = [StudyThread("a", fails), StudyThread("b", runs_until_stopped)]
    assert run_concurrently(studies, stop, poll_s=0.05) is False  # no Ctrl-C
    assert isinstance(studies[0].error, RuntimeError) and studies[1].result == "stopped"
