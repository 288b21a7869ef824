"""Every target's study at once: one Tune experiment per target, each driven from its own thread.

``run_search`` builds one ``Tuner`` per trained target and calls each ``fit()`` in a thread of the
driver, so the studies share the Ray cluster, its trials' capacity and the intermediate-checkpoint
cache while they run. What that takes, checked against Ray Tune 2.60's source:

- **Ctrl-C.** ``tune.run`` installs its SIGINT handler only in the main thread and keeps its "stop"
  event local to the call (``ray.tune.tune._setup_signal_catching``); a ``fit()`` in another thread
  would never see Ctrl-C. ``tune_interrupts`` hands every such call one shared event instead, which the
  main thread sets on Ctrl-C: each study then ends as Tune's own handler ends it (a last experiment
  snapshot, unfinished trials left unfinished for ``--resume``).
- **Nothing else is shared.** Each ``Tuner`` has its own ``TuneController`` (actor manager, resource
  manager, searcher, scheduler, callbacks, experiment path); Tune's module globals are the log verbosity
  (every study sets the same) and a cached placement-group parser. The legacy progress reporter prints
  each study's table with one ``print``; ``search/progress.py`` names the study in each table.
- **Capacity.** ``SlotGate`` holds the search's trial slots (``search/resources.py``
  ``concurrent_trials``): every study's searcher takes a slot before it proposes a trial, so the studies
  together never run more trials than the cluster holds, and a freed slot goes to the study running the
  fewest trials (ties: the one served least recently). Giving each study the whole limit and letting Ray
  queue the actors would not share: a study that reuses its actors (``reuse_actors``: replayed and
  in-process trials) hands its freed actor to its own next trial and keeps the slot until it ends.
  Proposing only when a slot is free also lets TPE see every result that came in before the proposal.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

WANT_S = 10.0
"""A study refused a slot counts as waiting for this long; each study's Tune loop asks again far sooner."""

SETUP_NAME = "_setup_signal_catching"
"""The function of ``ray.tune.tune`` that makes ``tune.run``'s stop event (read in Ray 2.60's source)."""

_GATES: dict[str, SlotGate] = {}
_GATES_LOCK = threading.Lock()


@dataclass
class SlotGate:
    """A search's trial slots, shared by its studies' searchers (found by key: searchers are pickled)."""

    capacity: int
    """Trials that may run at once, over all studies."""
    studies: tuple[str, ...] = ()
    """The studies, in target order: first served first, and each counted as waiting until it first asks."""
    clock: Callable[[], float] = time.monotonic
    """Seconds, for ``WANT_S``."""
    stop: threading.Event | None = None
    """Set on Ctrl-C: from then on every request is granted (see ``stopping``)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _live: dict[str, int] = field(default_factory=dict, repr=False)
    _waiting: dict[str, float] = field(default_factory=dict, repr=False)
    _served: dict[str, int] = field(default_factory=dict, repr=False)
    _done: set[str] = field(default_factory=set, repr=False)
    _turn: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def __post_init__(self) -> None:
        started = self.clock()
        for index, study in enumerate(self.studies):
            self._served[study] = index - len(self.studies)  # before any real turn, in target order
            self._waiting[study] = started

    @property
    def stopping(self) -> bool:
        """Whether the search is being stopped (Ctrl-C, or a study failed).

        A study that runs no trial asks its searcher again every second inside one step of Tune's loop
        (``TuneController._update_trial_queue``, blocking) and only checks its stop event between steps: a
        refusal would keep it there for up to 600 s. So once stopping, every request is granted: the study's
        next trial is proposed, Tune's loop sees the stop, and the trial is left pending for ``--resume``.
        """
        return self.stop is not None and self.stop.is_set()

    def take(self, study: str, live: int) -> bool:
        """Whether ``study``, running ``live`` trials now, may propose one more (and it counts as running)."""
        with self._lock:
            now = self.clock()
            self._live[study] = live
            if self.stopping:
                self._live[study] = live + 1
                return True
            self._served.setdefault(study, -len(self.studies) - 1)
            waiting = {
                other
                for other, since in self._waiting.items()
                if other != study and other not in self._done and now - since < WANT_S
            }
            mine = (live, self._served[study])
            if sum(self._live.values()) >= self.capacity or any(
                (self._live.get(other, 0), self._served[other]) < mine for other in waiting
            ):
                self._waiting[study] = now
                return False
            self._waiting.pop(study, None)
            self._served[study] = next(self._turn)
            self._live[study] = live + 1
            return True

    def update(self, study: str, live: int) -> None:
        """``study`` runs ``live`` trials now (a trial ended, or a resumed study's restored trials run)."""
        with self._lock:
            self._live[study] = live

    def withdraw(self, study: str) -> None:
        """``study`` wants no slot for now (its next proposal waits for a checkpoint)."""
        with self._lock:
            self._waiting.pop(study, None)

    def finish(self, study: str) -> None:
        """``study`` will propose nothing more: it no longer holds back the others."""
        with self._lock:
            self._done.add(study)
            self._waiting.pop(study, None)

    def live(self) -> dict[str, int]:
        """Running trials per study, as last reported."""
        with self._lock:
            return dict(self._live)


def register_gate(key: str, gate: SlotGate) -> None:
    """Make ``gate`` the one the searchers of search ``key`` (its local root) find."""
    with _GATES_LOCK:
        _GATES[key] = gate


def unregister_gate(key: str) -> None:
    """Forget search ``key``'s gate (its studies ended)."""
    with _GATES_LOCK:
        _GATES.pop(key, None)


def gate_for(key: str | None) -> SlotGate | None:
    """The gate of search ``key``, or None (a study run on its own: Tune's own limit alone)."""
    if key is None:
        return None
    with _GATES_LOCK:
        return _GATES.get(key)


@contextlib.contextmanager
def tune_interrupts(stop: threading.Event) -> Iterator[None]:
    """While inside: a ``tune.run`` called outside the main thread ends when ``stop`` is set.

    It replaces the event Tune's SIGINT handler would set (main thread only) with ``stop``; in the main
    thread Tune's own handler stays.
    """
    module = importlib.import_module("ray.tune.tune")
    if not hasattr(module, SETUP_NAME):  # a Ray whose tune.run stops otherwise: Ctrl-C would not reach it
        raise RuntimeError(
            f"ray.tune.tune.{SETUP_NAME} is gone in this Ray; search/concurrency.py needs a look"
        )
    original: Callable[[], threading.Event] = getattr(module, SETUP_NAME)

    def setup() -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            return original()
        return stop

    setattr(module, SETUP_NAME, setup)
    try:
        yield
    finally:
        setattr(module, SETUP_NAME, original)


@dataclass
class StudyThread:
    """One study's ``fit()`` in a thread of the driver: its result or the error it raised."""

    name: str
    """The study (``<search>.<target>``)."""
    fit: Callable[[], Any]
    """What the thread runs (``Tuner.fit``)."""
    result: Any = None
    """What ``fit`` returned."""
    error: BaseException | None = None
    """What ``fit`` raised."""

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"study-{self.name}", daemon=True)
        # Not Thread.is_alive/join: in Python 3.11 a Ctrl-C that interrupts join() marks a running thread
        # as stopped (bpo-45274's handler releases the lock the thread still holds).
        self._done = threading.Event()

    def _run(self) -> None:
        try:
            self.result = self.fit()
        except BaseException as error:  # handed to the main thread, which raises it
            self.error = error
        finally:
            self._done.set()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def alive(self) -> bool:
        """Whether ``fit`` still runs."""
        return not self._done.is_set()


def run_concurrently(studies: list[StudyThread], stop: threading.Event, poll_s: float = 0.5) -> bool:
    """Run every study's fit at once; on Ctrl-C or a study's error, ask the others to stop and wait for them.

    Returns whether Ctrl-C stopped them. A second Ctrl-C stops waiting (Tune's own: skip the last snapshot).
    """
    interrupted = False
    with tune_interrupts(stop):
        for study in studies:
            study.start()
        while any(study.alive() for study in studies):
            try:
                time.sleep(poll_s)
                if any(study.error is not None for study in studies):
                    stop.set()  # one study failed: the others end too, resumable
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                stop.set()
            except BaseException:  # SystemExit (Ray's SIGTERM handler): the studies start stopping too
                stop.set()
                raise
    return interrupted


__all__ = [
    "WANT_S",
    "SlotGate",
    "StudyThread",
    "gate_for",
    "register_gate",
    "run_concurrently",
    "tune_interrupts",
    "unregister_gate",
]
