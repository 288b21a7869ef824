"""A watchdog on the driver: a running trial that reports nothing for too long is flagged, not left silent.

A trial reports at start-up, after its intermediate phase and at every target evaluation; a trial that
stays RUNNING without a report for ``stall_after_s`` is stuck somewhere no bound caught (or is slower
than its reporting interval). ``StallWatch`` says so once per silence, in the driver's log and through
``on_stall`` (the MLflow tracker tags the trial's run), and clears the flag at the trial's next report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

logger = logging.getLogger("xstilts")


class StallWatch(Callback):
    """A Tune callback flagging running trials that have reported nothing for ``stall_after_s``."""

    def __init__(
        self,
        stall_after_s: float,
        on_stall: Callable[[Any, float], None],
        on_progress: Callable[[Any], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stall_after_s <= 0:
            raise ValueError(f"stall_after_s must be > 0, got {stall_after_s}")
        self.stall_after_s = stall_after_s
        self.on_stall = on_stall
        """Called with (trial, seconds without a report) once per silence."""
        self.on_progress = on_progress
        """Called with a flagged trial when it reports again."""
        self.clock = clock
        self._last: dict[str, float] = {}  # trial id -> when it started or last reported
        self._flagged: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Clock readings mean nothing in another process (after --resume): start counting afresh.
        return {**self.__dict__, "_last": {}, "_flagged": set()}

    def _seen(self, trial: Any) -> None:
        self._last[trial.trial_id] = self.clock()
        if trial.trial_id in self._flagged:
            self._flagged.discard(trial.trial_id)
            self.on_progress(trial)

    def silent_s(self, trial_id: str) -> float | None:
        """How long a flagged trial has reported nothing; ``None`` for a trial not flagged."""
        if trial_id not in self._flagged or trial_id not in self._last:
            return None
        return self.clock() - self._last[trial_id]

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Start counting."""
        self._seen(trial)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """A report: the trial is alive."""
        self._seen(trial)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Flag every running trial silent for longer than the bound (once per silence)."""
        now = self.clock()
        for trial in trials:
            if trial.status != "RUNNING":
                self._last.pop(trial.trial_id, None)
                self._flagged.discard(trial.trial_id)
                continue
            since = self._last.setdefault(trial.trial_id, now)
            silent = now - since
            if silent >= self.stall_after_s and trial.trial_id not in self._flagged:
                self._flagged.add(trial.trial_id)
                logger.warning(
                    "xstilts: trial %s has reported nothing for %.0f s (--stall-after %.0f): it may be stuck",
                    trial.trial_id,
                    silent,
                    self.stall_after_s,
                )
                self.on_stall(trial, silent)
