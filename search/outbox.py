"""MLflow logging that survives a tracking-server outage and a driver crash: an on-disk journal, replayed in order.

``BufferedTracker`` sits between Tune and ``tracking.TrialTracker``: every event the tracker logs (a
trial starting, a result, an end, a stall flag) is first appended to a JSON-lines journal (flushed and
fsynced, so a driver crash loses nothing), then applied to MLflow in journal order. When the server
cannot be reached, applying stops at the first entry that failed, trials keep running, and it is
retried with exponential backoff on later events and on every Tune loop step; at the end of a study
the tracker waits up to ``final_wait_s`` for the server. ``<journal>.applied`` holds the sequence
number of the last applied entry; the tracker of a ``--resume`` replays what its predecessor left.

Applying is idempotent, so an entry applied just before a crash and applied again after it duplicates
nothing: a trial's run is found by tag before one is created (and described if its creation was cut
short), tags and params are written with the same values, and MLflow stores a metric row (key, value,
timestamp, step) once however often it is logged; the timestamp is the one Tune reported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from search.tracking import TrialTracker, numeric_metrics
from trainers._atomic import write_text_atomic
from trainers.keys import FINISHED

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
"""Wait before the first retry after a failed write; it doubles with every failure in a row..."""
MAX_RETRY_S = 30.0
"""...up to this."""
FINAL_WAIT_S = 600.0
"""How long the end of a study waits for the server to take what is still buffered."""
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
"""MLflow's own HTTP client retries for minutes by default, which would stall the driver (and every
trial's results) on each write; the journal does the retrying instead (a variable already set wins)."""
PERMANENT_ERRORS = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_ALREADY_EXISTS",
        "INVALID_STATE",
        "BAD_REQUEST",
    }
)
"""MLflow error codes no retry can fix: the entry is set aside (``<journal>.rejected``), not retried forever."""


def _is_permanent(error: Exception) -> bool:
    return getattr(error, "error_code", None) in PERMANENT_ERRORS


@dataclass
class Outbox:
    """An append-only journal of entries applied in order, at least once; what failed waits for a retry."""

    path: Path
    """The journal (JSON lines, each with a ``seq``); ``<path>.applied`` holds the last applied seq."""
    first_retry_s: float = FIRST_RETRY_S
    max_retry_s: float = MAX_RETRY_S
    failures: int = 0
    """Failed attempts in a row (0: the last attempt applied everything it tried)."""
    retry_at: float = 0.0
    """``time.monotonic()`` before which no attempt is made."""
    outage_since: float | None = None
    """``time.time()`` of the first failure of the current outage."""
    replayed: int = 0
    """Entries applied after having waited in the journal (the current outage)."""
    _pending: deque[dict[str, Any]] | None = field(default=None, repr=False)
    _next_seq: int = 0

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with Tune's callbacks: the journal on disk, not this copy, is the truth.
        return {**self.__dict__, "_pending": None}

    @property
    def applied_path(self) -> Path:
        """Where the last applied sequence number is kept."""
        return self.path.with_name(self.path.name + ".applied")

    def _load(self) -> deque[dict[str, Any]]:
        if self._pending is not None:
            return self._pending
        applied = -1
        with contextlib.suppress(FileNotFoundError, ValueError):
            applied = int(self.applied_path.read_text())
        pending: deque[dict[str, Any]] = deque()
        last = applied
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line half-written when the driver died: its event was never acknowledged
                last = max(last, int(entry["seq"]))
                if entry["seq"] > applied:
                    pending.append(entry)
        self._pending = pending
        self._next_seq = last + 1
        return pending

    def pending(self) -> int:
        """Entries not applied yet."""
        return len(self._load())

    def put(self, entry: dict[str, Any]) -> None:
        """Append ``entry`` durably (it gets the next ``seq``)."""
        pending = self._load()
        entry = {"seq": self._next_seq, **entry}
        self._next_seq += 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(entry, default=str) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        pending.append(entry)

    def flush(self, apply: Callable[[dict[str, Any]], None], force: bool = False) -> int:
        """Apply pending entries in order until one fails (then back off); the number still pending."""
        pending = self._load()
        if not pending or (not force and time.monotonic() < self.retry_at):
            return len(pending)
        while pending:
            entry = pending[0]
            try:
                apply(entry)
            except Exception as error:
                if not _is_permanent(error):
                    self._failed(error, len(pending))
                    return len(pending)
                self._reject(entry, error)
            self._mark_applied(int(entry["seq"]))
            pending.popleft()
            if self.outage_since is not None:
                self.replayed += 1
        if self.outage_since is not None:
            log.warning(
                "MLflow is back after %.0f s: %d buffered writes replayed from %s",
                time.time() - self.outage_since,
                self.replayed,
                self.path,
            )
        self.failures, self.retry_at, self.outage_since, self.replayed = 0, 0.0, None, 0
        self._compact()
        return 0

    def drain(self, apply: Callable[[dict[str, Any]], None], timeout_s: float) -> int:
        """Flush, retrying with backoff for up to ``timeout_s``; the number still pending."""
        deadline = time.monotonic() + timeout_s
        while self.flush(apply, force=True):
            if time.monotonic() >= deadline:
                break
            time.sleep(max(0.0, min(self.retry_at, deadline) - time.monotonic()))
        return self.pending()

    def _failed(self, error: Exception, pending: int) -> None:
        if self.outage_since is None:
            self.outage_since = time.time()
            log.warning(
                "MLflow write failed (%s); trials go on, %d writes buffered in %s and retried with backoff",
                str(error).splitlines()[0][:200],
                pending,
                self.path,
            )
        wait = min(self.max_retry_s, self.first_retry_s * 2**self.failures)
        self.failures += 1
        self.retry_at = time.monotonic() + wait

    def _reject(self, entry: dict[str, Any], error: Exception) -> None:
        log.warning("MLflow refused a write for good (%s); kept in %s.rejected", error, self.path)
        with self.path.with_name(self.path.name + ".rejected").open("a", encoding="utf-8") as out:
            out.write(json.dumps({**entry, "error": str(error)}, default=str) + "\n")

    def _mark_applied(self, seq: int) -> None:
        # Written before the entry leaves the queue; if the driver dies in between, the entry is applied
        # again after --resume, which is harmless (applying is idempotent).
        write_text_atomic(self.applied_path, str(seq))

    def _compact(self) -> None:
        # Everything is applied: start the journal afresh. Sequence numbers keep counting from .applied,
        # so a crash between these two steps cannot make a new entry look applied.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class _Trial:
    """What ``TrialTracker`` reads of a Tune trial, rebuilt from a journal entry."""

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any]


class BufferedTracker(Callback):
    """A Tune callback that journals every MLflow write of ``tracker`` and applies it when the server takes it."""

    def __init__(
        self, tracker: TrialTracker, journal: str | Path, final_wait_s: float = FINAL_WAIT_S
    ) -> None:
        for name, value in HTTP_SETTINGS.items():
            os.environ.setdefault(name, value)
        self.tracker = tracker
        self.outbox = Outbox(Path(journal))
        self.final_wait_s = final_wait_s
        self._session_marked = False
        self._known_token: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_session_marked": False, "_known_token": None}

    @property
    def run_ids(self) -> dict[str, str]:
        """Trial id -> MLflow run id, of the runs applied so far."""
        return self.tracker.run_ids

    def _put(self, hook: str, trial: Any, **payload: Any) -> None:
        if not self._session_marked:
            # Runs looked up while replaying a previous driver's journal are looked up again afterwards:
            # the replay may have finished them, which decides whether this driver may log to them.
            self.outbox.put({"hook": "session"})
            self._session_marked = True
        last = {FINISHED: (trial.last_result or {}).get(FINISHED)}
        self.outbox.put(
            {
                "hook": hook,
                "trial_id": trial.trial_id,
                "config": dict(trial.config),
                "last_result": last,
                **payload,
            }
        )
        self.outbox.flush(self._apply)

    def _apply(self, entry: dict[str, Any]) -> None:
        hook = entry["hook"]
        if hook == "session":
            self.tracker.run_ids.clear()
            self.tracker.closed.clear()
            return
        if hook == "known":
            # Only this driver's own list: an earlier driver's, replayed now, is out of date.
            if entry["token"] == self._known_token:
                self.tracker.forget_lost(set(entry["trial_ids"]))
            return
        trial = _Trial(entry["trial_id"], entry["config"], entry["last_result"])
        if hook == "start":
            self.tracker.on_trial_start(0, [], trial)
        elif hook == "result":
            self.tracker.on_trial_result(0, [], trial, entry["result"])
        elif hook == "complete":
            self.tracker.on_trial_complete(0, [], trial)
        elif hook == "error":
            self.tracker.on_trial_error(0, [], trial)
        elif hook == "stalled":
            self.tracker.flag_stalled(trial, entry["silent_s"])
        elif hook == "unstalled":
            self.tracker.clear_stalled(trial)
        else:
            raise ValueError(f"unknown journal entry {hook!r}")

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        """Replay what a previous driver of this study left in the journal (if the server takes it now)."""
        self.outbox.flush(self._apply, force=True)
        self.tracker.new_session()  # what the replay touched was the previous driver's

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Retry buffered writes once their backoff has passed, even while no trial reports.

        At the first step, journal the trials Tune knows (after ``--resume``: those it restored), so that
        runs of trials it lost with a killed driver are deleted (``TrialTracker.forget_lost``).
        """
        if self._known_token is None:
            self._known_token = uuid.uuid4().hex
            ids = sorted(t.trial_id for t in trials)
            self.outbox.put({"hook": "known", "token": self._known_token, "trial_ids": ids})
        self.outbox.flush(self._apply)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Journal: open (or re-open) the trial's run."""
        self._put("start", trial)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """Journal: the reported metrics, with Tune's timestamp and step."""
        kept = {**numeric_metrics(result), "timestamp": result.get("timestamp", 0)}
        self._put("result", trial, result=kept)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Journal: the trial ended (completed or stopped early)."""
        self._put("complete", trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Journal: the trial failed."""
        self._put("error", trial)

    def flag_stalled(self, trial: Any, silent_s: float) -> None:
        """Journal: the trial has reported nothing for ``silent_s`` (the stall watchdog's ``on_stall``)."""
        self._put("stalled", trial, silent_s=silent_s)

    def clear_stalled(self, trial: Any) -> None:
        """Journal: the stalled trial reports again."""
        self._put("unstalled", trial)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Wait (up to ``final_wait_s``) for the server to take everything still buffered."""
        left = self.outbox.drain(self._apply, self.final_wait_s)
        if left:
            log.warning(
                "MLflow still unreachable: %d writes stay in %s; `xstilts search --resume` replays them",
                left,
                self.outbox.path,
            )


__all__ = ["BufferedTracker", "Outbox"]
