"""Tune's status table, with what each running trial is doing: phase, step / total, ETA, loss, dev score.

Trials report ``progress/*`` (``trainers/keys.py``) with their results and, between them, on a cadence
of about ``XSTILTS_PROGRESS_EVERY_S``. ``ProgressTable`` is a ``CLIReporter`` (``RunConfig(progress_reporter=)``,
Tune's legacy output engine: the default one ignores custom reporters) that keeps each trial's latest
progress, so that a result without it (a phase's own) does not blank the row, and shows it as columns;
a trial the stall watchdog (``search/watchdog.py``) has flagged shows how long it has been silent.
Every target's study prints its own table (they run at once, ``search/concurrency.py``); each table names
its study under Tune's ``== Status ==`` line.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune import CLIReporter

from search.watchdog import StallWatch
from trainers.keys import (
    FINISHED,
    PROGRESS_DEV,
    PROGRESS_ETA_S,
    PROGRESS_LOSS,
    PROGRESS_PHASE,
    PROGRESS_STEP,
    PROGRESS_TOTAL,
)
from trainers.progress import ProgressSettings, duration

COLUMNS = ("phase", "step", "eta", "loss", "dev")
"""What the table adds for each trial."""
STALLED = "stalled"
"""A column while some trial is flagged by the watchdog: how long it has reported nothing."""
_CELL = "xstilts progress {}"
"""The key a column's cell is shown under (in a copy of the trial's last result; nothing is logged)."""


def progress_cells(progress: dict[str, Any]) -> dict[str, str]:
    """The table cells of one trial's latest progress, by column."""
    if progress.get(FINISHED) == 1.0:
        return {"phase": "done"}
    phase = progress.get(PROGRESS_PHASE)
    if phase is None:
        return {"phase": "starting"}
    step, total = progress.get(PROGRESS_STEP), progress.get(PROGRESS_TOTAL)
    eta, loss, dev = progress.get(PROGRESS_ETA_S), progress.get(PROGRESS_LOSS), progress.get(PROGRESS_DEV)
    cells = {"phase": str(phase), "step": f"{step}/{total}"}
    if isinstance(eta, int | float) and math.isfinite(eta):
        cells["eta"] = duration(eta)
    if isinstance(loss, int | float):
        cells["loss"] = f"{loss:.4f}"
    if isinstance(dev, int | float):
        cells["dev"] = f"{dev:.2f}"
    return cells


class _Shown:
    """A trial as the table sees it: its last result plus the progress cells; everything else is the trial's."""

    def __init__(self, trial: Any, cells: dict[str, str]) -> None:
        self._trial = trial
        self.last_result = {**(trial.last_result or {}), **{_CELL.format(k): v for k, v in cells.items()}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    def __str__(self) -> str:
        return str(self._trial)


class ProgressTable(CLIReporter):
    """Tune's status table with each trial's phase, step / total, ETA, loss, dev score and stall flag."""

    def __init__(
        self,
        metric: str | None,
        watch: StallWatch | None = None,
        settings: ProgressSettings | None = None,
        study: str | None = None,
    ) -> None:
        every_s = (settings or ProgressSettings.from_env()).every_s
        columns = {_CELL.format(c): c for c in (*COLUMNS, STALLED)}
        super().__init__(
            metric_columns={**({metric: metric} if metric else {}), **columns},
            max_report_frequency=max(1, round(every_s)),
            print_intermediate_tables=True,
        )  # metric and mode: Tune hands the experiment's to the reporter
        self.watch = watch
        self.study = study
        """The study (``<search>.<target>``) the table belongs to, shown in it."""
        self._progress: dict[str, dict[str, Any]] = {}  # trial id -> its latest progress/* (and FINISHED)

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with the experiment (--resume): progress is re-learned from the next reports.
        return {**self.__dict__, "_progress": {}}

    def should_report(self, trials: list[Any], done: bool = False) -> bool:
        """Tune asks at every step of its loop: note each trial's latest progress, then answer as Tune would."""
        for trial in trials:
            result = trial.last_result or {}
            latest = {k: v for k, v in result.items() if k.startswith("progress/") or k == FINISHED}
            if latest:
                self._progress[trial.trial_id] = {**self._progress.get(trial.trial_id, {}), **latest}
        return bool(super().should_report(trials, done))

    def shown(self, trials: list[Any]) -> list[Any]:
        """The trials with their progress cells (the latest progress each has reported, and the stall flag)."""
        out = []
        for trial in trials:
            cells = progress_cells(self._progress.get(trial.trial_id, {}))
            if trial.status == "TERMINATED" and cells["phase"] != "done":  # the scheduler stopped it early
                cells = {**cells, "phase": "stopped", "eta": ""}
            silent = self.watch.silent_s(trial.trial_id) if self.watch else None
            if silent is not None:
                cells[STALLED] = f"no report for {duration(silent)}"
            out.append(_Shown(trial, cells))
        return out

    def report(self, trials: list[Any], done: bool, *sys_info: str) -> None:
        """Print Tune's status table with the progress columns, naming the study."""
        # Tables pickled before the field existed (a resumed search) have none.
        named = (f"Study: {self.study}",) if getattr(self, "study", None) else ()
        super().report(self.shown(trials), done, *named, *sys_info)


__all__ = ["COLUMNS", "STALLED", "ProgressTable", "progress_cells"]
