"""The search driver: one Optuna study per target task, run by Ray Tune with ASHA, tracked in MLflow.

Each target is its own Tune experiment ``<storage>/<search>/<target>`` and its own Optuna study
(kept in an SQLite RDB next to it), because the best intermediate task differs per target and the
scores of different targets are not comparable. The studies run at the same time, each ``fit()`` in a
thread of the driver (``search/concurrency.py``): they share the cluster's trial slots and the
intermediate-checkpoint cache, so an intermediate task trained for one target is reused by the others
while they run. Retrieval targets (BUCC, Tatoeba) get no study: after the studies they are evaluated on
the base encoder and on every intermediate checkpoint the trials used (``search/retrieval_eval.py``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import tracking
from search.checks import check_search_name
from search.concurrency import SlotGate, StudyThread, register_gate, run_concurrently, unregister_gate
from search.launch import init_ray, nodes_without
from search.layout import DEFAULT_STORAGE, SearchLayout
from search.outbox import BufferedTracker
from search.progress import ProgressTable
from search.resources import (
    ResourceError,
    check_resources,
    concurrent_trials,
    current_reach,
    runs_in_process,
    trial_actor_resources,
)
from search.retrieval_eval import (
    RetrievalOutcome,
    evaluate_retrieval_targets,
    is_retrieval,
    ray_runner,
    replay_runner,
)
from search.space import (
    INTERMEDIATE_TASK,
    MIXTURE_SEPARATOR,
    NO_INTERMEDIATE,
    CategoricalParam,
    SearchSpace,
    load_space,
)
from search.study import StudyOutcome, outcome, scheduler, searcher
from search.trial import TrialSettings, run_trial, trial_config
from search.warm_start import check_earlier, earlier_points
from search.watchdog import StallWatch
from trainers import keys
from trainers.config import ConfigError
from trainers.errors import UserError

TRIAL_RETRIES = 2
"""A failed trial (e.g. its node was lost) is restarted this often; it resumes from its checkpoint."""


class SearchError(UserError, RuntimeError):
    """A search that cannot start or resume (one line)."""


class SearchInterrupted(SearchError):
    """The search was stopped (Ctrl-C) before every study finished; ``--resume`` continues it."""


@dataclass
class SearchOptions:
    """Command-line options of ``xstilts search``."""

    space: str = "spaces/demo.yaml"
    """The search space file."""
    name: str | None = None
    """Search name (default: the space's name)."""
    resume: bool = False
    """Continue an interrupted search of this name."""
    storage: str = DEFAULT_STORAGE
    """Tune/Train storage: a local path or a URI (s3://...)."""
    tracking_uri: str | None = None
    """MLflow tracking URI (default: SQLite under ./mlruns)."""
    cache_root: str | None = None
    """Intermediate-checkpoint cache (default: <data.cache_dir>/intermediate)."""
    max_concurrent_trials: int | None = None
    """Override the value derived from the cluster's resources."""
    targets: list[str] = field(default_factory=list)
    """Only these targets of the space (default: all)."""
    stall_after_s: float = 1800.0
    """Flag a running trial that has reported nothing for this long (0: never)."""
    replay: str | None = None
    """Answer trials from this recorded grid (``benchmarks/grid.py``) instead of training (``search/replay.py``)."""
    reuse_intermediate: bool = True
    """With ``replay``: reuse published intermediate checkpoints; ``False`` charges every trial its own."""
    warm_start: bool = False
    """Each target's study tries the intermediate settings of the other targets' best finished trials as
    they appear (opt-in until the search benchmark shows what it saves)."""
    warm_start_from: str | None = None
    """An earlier search (under the same storage) whose best configurations and intermediate settings
    each study tries first (``search/warm_start.py``)."""


def preflight_space(space: SearchSpace) -> None:
    """Every target's base config and seeded points pass the run pre-flight checks (data, freeze depth),
    and on the miniature every intermediate task the space may draw has a generator."""
    from trainers.data.miniature import check_miniature_tasks
    from trainers.preflight import preflight

    drawn = {
        task
        for param in space.params
        if param.name == INTERMEDIATE_TASK and isinstance(param, CategoricalParam)
        for choice in param.choices
        for task in str(choice).split(MIXTURE_SEPARATOR)
        if task != NO_INTERMEDIATE
    }
    for target in space.targets:
        try:
            if space.base_config(target).data.source == "miniature":
                check_miniature_tasks(sorted(drawn))
            for point in space.points_for(target) or [{}]:
                preflight(space.to_transfer_config(point, target))
        except ConfigError as error:
            raise SearchError(f"{space.source}: target {target}: {error}") from None


def _watchdog(stall_after_s: float, tracker: BufferedTracker) -> list[Any]:
    """The stall watchdog (tagging runs through ``tracker``), or none when ``stall_after_s`` is 0."""
    if stall_after_s <= 0:
        return []
    return [StallWatch(stall_after_s, tracker.flag_stalled, tracker.clear_stalled)]


def _progress_table(space: SearchSpace, watch: list[Any], study: str) -> ProgressTable:
    """Tune's status table of ``study`` with each trial's phase, step, ETA, loss, dev score and stall flag."""
    stall = next((w for w in watch if isinstance(w, StallWatch)), None)
    return ProgressTable(space.tuner.metric, stall, study=study)


def _trial_function(settings: TrialSettings, options: SearchOptions) -> Any:
    """A real trial (a Ray Train job), or its record in a grid when replaying."""
    from ray import tune

    if options.replay is None:
        return tune.with_parameters(run_trial, settings=settings)
    from search.replay import ReplaySettings, replay_trial

    replay = ReplaySettings(str(Path(options.replay).resolve()), options.reuse_intermediate)
    return tune.with_parameters(replay_trial, settings=settings, replay=replay)


def _registered(trainable: Any, target: str) -> str:
    """``trainable`` registered with Tune as ``<function>.<target>``; its name is what each study's Tuner gets.

    Tune registers a trainable under its function's name in a process-wide registry that trial actors
    read it back from; two studies' trainables (one function, different settings) would take one name,
    the later one's settings serving both, and two ``fit()`` calls registering at once race on the
    registry's dict. Registered here, in the driver's main thread, under one name per target, each
    study's ``fit()`` registers nothing.
    """
    from ray import tune

    name = f"{getattr(trainable, '__name__', 'trial')}.{target}"
    tune.register_trainable(name, trainable, warn=False)
    return name


def _run_studies(
    name: str, layout: SearchLayout, studies: list[StudyThread], slots: int, space: SearchSpace
) -> list[StudyOutcome]:
    """Every study's ``fit()`` at once, sharing ``slots`` trial slots; what each found, in target order.

    Raises the first study's error (the others stopped, resumable), or ``SearchInterrupted`` naming the
    targets Ctrl-C left unfinished.
    """
    key = str(layout.local_root)
    stop = threading.Event()
    register_gate(key, SlotGate(slots, tuple(layout.study_name(study.name) for study in studies), stop=stop))
    try:
        interrupted = run_concurrently(studies, stop)
    finally:
        unregister_gate(key)
    failed = next((study.error for study in studies if study.error is not None), None)
    if failed is not None:
        raise failed
    # Tune ends a study's fit() early without raising on Ctrl-C: its unfinished trials are left.
    unfinished = [
        study.name
        for study in studies
        if study.result.num_terminated + study.result.num_errors < len(study.result)
    ]
    if interrupted or unfinished:
        left = f" with unfinished trials in {', '.join(unfinished)}" if unfinished else ""
        raise SearchInterrupted(f"search {name!r} was interrupted{left}; continue it with --resume")
    return [
        outcome(name, study.name, study.result, space.tuner.metric, space.tuner.mode) for study in studies
    ]


def run_search(options: SearchOptions) -> list[StudyOutcome | RetrievalOutcome]:
    """Run (or resume) every trained target's study, then evaluate the retrieval targets; return what each found.

    Retrieval targets (BUCC, Tatoeba) get no study: they are evaluated on the base encoder and on each
    intermediate checkpoint the studies' trials used (``search/retrieval_eval.py``).
    """
    from ray import tune

    space = load_space(options.space)
    name = options.name or space.name
    check_search_name(name)
    if options.warm_start_from is not None:
        check_search_name(options.warm_start_from)
        if options.warm_start_from == name:
            raise SearchError(f"--warm-start {name}: a search cannot start from itself")
        check_earlier(SearchLayout(options.warm_start_from, options.storage))
    targets = options.targets or list(space.targets)
    unknown = [t for t in targets if t not in space.targets]
    if unknown:
        raise SearchError(
            f"--target {unknown[0]} is not a target of {options.space} ({', '.join(space.targets)})"
        )
    if options.replay:
        from search.replay import check_space

        check_space(space, options.replay)  # instead of the data pre-flight: nothing is trained
    else:
        from search.costs import check_memory

        # The memory plan (no I/O): a trial that cannot fit its GPUs never starts.
        check_memory(space, targets)
        preflight_space(space)
    uri = options.tracking_uri or tracking.default_tracking_uri()
    tracking.check_tracking_uri(uri)
    layout = SearchLayout(name, options.storage)
    local_root = layout.local_root
    if not options.resume and local_root.exists() and any(local_root.iterdir()):
        raise SearchError(
            f"search {name!r} already exists under {local_root}; pass --resume or another --name"
        )
    local_root.mkdir(parents=True, exist_ok=True)
    cache_root = options.cache_root or str(
        Path(space.base_config(targets[0]).data.cache_dir).expanduser() / "intermediate"
    )
    if "://" in cache_root:
        raise SearchError(
            f"--cache-root {cache_root}: the cache needs a POSIX directory (a shared mount), not a URI"
        )
    # Trials also report before their target phase (what phase 1 did), without the target metric yet.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # The status table with each trial's phase, step and ETA (search/progress.py) is a CLIReporter, which
    # only Tune's legacy output engine prints.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Snapshot the experiment often, so that after an interruption few finished trials look unfinished
    # (those that do are re-run from their final checkpoint: no training, nothing logged twice).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
    init_ray()
    reach = current_reach()
    try:
        check_resources(space, reach)
    except ResourceError as error:
        raise SearchError(str(error)) from None
    missing = nodes_without(cache_root)
    if missing:
        raise SearchError(
            f"the intermediate-checkpoint cache {cache_root} is not shared: {len(missing)} of the cluster's "
            f"nodes do not see it (or did not answer); mount one directory on every node (EFS, NFS) and pass it as "
            "--cache-root or XSTILTS_CACHE"
        )
    experiment = tracking.experiment_id(uri, layout.experiment_name)
    outcomes: list[StudyOutcome | RetrievalOutcome] = []
    retrieval = [t for t in targets if is_retrieval(t)]
    trained = [t for t in targets if t not in retrieval]
    first = (
        earlier_points(space, trained, SearchLayout(options.warm_start_from, options.storage))
        if options.warm_start_from
        else {}
    )
    slots = concurrent_trials(space, reach.total, options.max_concurrent_trials)
    # The parent run ends FINISHED when every study ran, FAILED on any error or interruption.
    params = {
        keys.SPACE_PARAM: options.space,
        keys.TARGETS_PARAM: ",".join(targets),
        keys.OBJECTIVE_PARAM: space.tuner.metric,  # what select and report read back (search.results)
    }
    with tracking.search_run(uri, experiment, name, params) as parent:
        studies: list[StudyThread] = []
        for target in trained:
            settings = TrialSettings(
                space=space,
                target=target,
                search=name,
                cache_root=cache_root,
                train_storage=layout.train_storage,
            )
            # A trial whose one worker runs in its own process holds that worker's resources; otherwise the
            # trial function only waits on its Train job, whose workers hold them, and Tune needs a
            # non-empty request: a sliver of the head (on a cluster) or of a CPU.
            trainable = _registered(
                tune.with_resources(
                    _trial_function(settings, options), trial_actor_resources(space, reach.total)
                ),
                target,
            )
            in_process = options.replay is None and runs_in_process(space.base_config(target).scaling)
            path = layout.tune_path(target)

            def params_of(
                config: dict[str, Any], trial_id: str, settings: TrialSettings = settings
            ) -> tuple[dict[str, Any], dict[str, Any]]:
                resolved = trial_config(settings, config, trial_id).to_dict()
                return tracking.trial_params(resolved, config), resolved

            # MLflow writes go through a journal on disk: an outage of the server buffers them, a crash keeps them.
            tracker = BufferedTracker(
                tracking.TrialTracker(uri, experiment, parent, name, target, params_of),
                layout.journal(target),
            )
            if options.resume and tune.Tuner.can_restore(path):
                try:
                    tuner = tune.Tuner.restore(
                        path, trainable=trainable, resume_unfinished=True, resume_errored=True
                    )
                except ValueError as error:
                    if "trainable" not in str(error):
                        raise
                    # Its studies ran one after another under one trainable name (see _registered).
                    raise SearchError(
                        f"search {name!r} was started by an xstilts that ran targets one after another; "
                        "resume it with that version, or start a new search"
                    ) from None
            else:
                watch = _watchdog(options.stall_after_s, tracker)
                others = tuple(layout.study_name(t) for t in trained if t != target)
                tuner = tune.Tuner(
                    trainable,
                    tune_config=tune.TuneConfig(
                        search_alg=searcher(
                            space,
                            target,
                            layout,
                            cache_root,
                            first.get(target),
                            others if options.warm_start else (),
                            hold_waiting=in_process,
                        ),
                        scheduler=scheduler(space),
                        num_samples=space.tuner.num_samples,
                        metric=space.tuner.metric,
                        mode=space.tuner.mode,
                        # The search's slots are shared through the gate; Tune's own limit only bounds a
                        # study that runs alone (one target, or a searcher restored from before the gate).
                        max_concurrent_trials=slots,
                        # A replayed trial is a table lookup: starting a process for each would dominate. A trial
                        # that trains in its own process hands the next one its imports and process group.
                        reuse_actors=options.replay is not None or in_process,
                    ),
                    run_config=tune.RunConfig(
                        name=target,
                        storage_path=layout.tune_root,
                        callbacks=[tracker, *watch],
                        progress_reporter=_progress_table(space, watch, layout.study_name(target)),
                        # The status table alone: trials' results are in it (and in MLflow), not a line each.
                        verbose=1,
                        failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
                        # The checkpoints in-process trials report (Ray Train jobs keep theirs in train storage).
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    ),
                )
            studies.append(StudyThread(target, tuner.fit))
        outcomes += _run_studies(name, layout, studies, slots, space)
        if retrieval:
            output_root = Path(layout.train_storage.replace("://", "/", 1)).parent / "retrieval"
            # As many at once as trials, each holding what a trial's own actor holds.
            evaluate = (
                ray_runner(
                    cache_root,
                    layout.train_storage,
                    name,
                    TRIAL_RETRIES,
                    trial_actor_resources(space, reach.total),
                    concurrent_trials(space, reach.total, options.max_concurrent_trials),
                )
                if options.replay is None
                else replay_runner(str(Path(options.replay).resolve()))
            )
            try:
                outcomes += evaluate_retrieval_targets(
                    uri,
                    experiment,
                    parent,
                    name,
                    space,
                    retrieval,
                    None if options.replay else cache_root,
                    output_root,
                    evaluate,
                )
            except KeyboardInterrupt:
                raise SearchInterrupted(
                    f"search {name!r} was interrupted while evaluating its retrieval targets; continue it with "
                    "--resume"
                ) from None
    return outcomes
