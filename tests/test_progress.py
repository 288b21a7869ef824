"""Long work shows its progress: periodic lines on a non-interactive stream, progress reports for the driver."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import time
import types
from pathlib import Path
from typing import Any

import pytest

from search.progress import ProgressTable
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
from trainers.progress import (
    PROGRESS_EVERY_ENV,
    PhaseProgress,
    ProgressSettingError,
    ProgressSettings,
    duration,
    set_rank,
    stage,
)
from trainers.worker import Plan, run_local

STEP_LINE = re.compile(
    r"^xstilts: target step (\d+)/12 \(\d+%\) \| [\d.]+ (?:step/s|s/step), ([\d.]+) ex/s \| loss [\d.]+(?: \| eta \S+)?"
)
EVAL_LINE = re.compile(r"^xstilts: eval test language (\d+)/(\d+) \(\d+%\)")


def test_a_short_phase_prints_periodic_lines_and_reports_progress(
    tiny_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 12-step target phase with output captured (not a terminal) and a line due at every step."""
    monkeypatch.setenv(PROGRESS_EVERY_ENV, "0")
    config = tiny_config(tmp_path / "run", "pawsx", None, ["target.max_steps=12", "target.batch_size=4"])
    run_local(Plan(config, cache_root=str(tmp_path / "cache")))
    captured = capsys.readouterr()
    lines = captured.err.splitlines()

    # The phase says what it will do, then a line per step (every_s=0): phase, step/total, rate, loss, ETA.
    assert "xstilts: target: 12 steps" in lines
    steps = [m for m in map(STEP_LINE.match, lines) if m]
    assert [int(m.group(1)) for m in steps] == [*range(1, 13), 12]  # the last: the closing line
    assert all(float(m.group(2)) > 0 for m in steps)  # examples per second
    assert "eta" in lines[lines.index(steps[0].group(0))]
    assert "| done in " in steps[-1].string
    # Evaluation counts languages.
    evals = [m for m in map(EVAL_LINE.match, lines) if m]
    total = int(evals[0].group(2))
    assert total > 1  # every language the miniature has for the task
    assert [int(m.group(1)) for m in evals] == [*range(1, total + 1), total]
    # Nothing of it reaches stdout, where `xstilts run` prints its scores table.
    assert "xstilts: target" not in captured.out

    # The driver got progress reports between checkpoints: agreed after 10 steps, then every step
    # but the last (that one is the phase's own result); they carry progress/* only, no target_step
    # (which ASHA reads as the trial's time).
    reports = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    target = [r for r in reports if r.get(PROGRESS_PHASE) == "target"]
    assert [r[PROGRESS_STEP] for r in target] == [11]
    assert target[0][PROGRESS_TOTAL] == 12 and target[0][PROGRESS_ETA_S] >= 0
    assert "target_step" not in target[0] and "cost/gpu_s" in target[0]
    evaluated = [r[PROGRESS_STEP] for r in reports if r.get(PROGRESS_PHASE) == "eval test"]
    assert evaluated == list(range(2, total))


class FakeClock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_every_interval_not_every_step() -> None:
    """On a non-interactive stream, 100 steps 1 s apart at a 30 s interval give a line every 30 s."""
    clock, stream = FakeClock(), io.StringIO()
    shown = PhaseProgress(
        "intermediate",
        100,
        examples_per_unit=8,
        settings=ProgressSettings(every_s=30.0),
        stream=stream,
        clock=clock,
    )
    due = []
    for step in range(1, 101):
        clock.now += 1.0
        if shown.advance(step, loss=0.5):
            due.append(step)
    shown.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "xstilts: intermediate: 100 steps"
    assert lines[1:4] == [
        "xstilts: intermediate step 30/100 (30%) | 1.00 step/s, 8.0 ex/s | loss 0.5000 | eta 1m10s",
        "xstilts: intermediate step 60/100 (60%) | 1.00 step/s, 8.0 ex/s | loss 0.5000 | eta 40s",
        "xstilts: intermediate step 90/100 (90%) | 1.00 step/s, 8.0 ex/s | loss 0.5000 | eta 10s",
    ]
    assert (
        lines[4]
        == "xstilts: intermediate step 100/100 (100%) | 1.00 step/s, 8.0 ex/s | loss 0.5000 | done in 1m40s"
    )
    assert len(lines) == 5
    # Reports to the driver: 30 s at the pace of steps 2-10 is every 30 steps (never on the last step).
    assert shown.report_every == 30 and due == [30, 60, 90]


def test_other_ranks_print_nothing() -> None:
    """Rank 1 prints no line at all, but agrees on the report cadence like rank 0."""
    clock, stream = FakeClock(), io.StringIO()
    set_rank(1)
    try:
        shown = PhaseProgress(
            "target", 20, settings=ProgressSettings(every_s=0.0), stream=stream, clock=clock
        )
        due = []
        for step in range(1, 21):
            clock.now += 1.0
            due += [step] if shown.advance(step) else []
        shown.close()
        with stage("building something", stream=stream):
            pass
    finally:
        set_rank(None)
    assert stream.getvalue() == ""
    assert due == list(range(11, 20))


@pytest.mark.parametrize("raw", ["soon", "-1", "nan"])
def test_a_bad_interval_is_one_clear_error(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_EVERY_ENV, raw)
    with pytest.raises(ProgressSettingError, match=f"{PROGRESS_EVERY_ENV}='{re.escape(raw)}'"):
        ProgressSettings.from_env()


def test_durations_read_like_a_clock() -> None:
    assert [duration(s) for s in (0, 42, 190, 3720)] == ["0s", "42s", "3m10s", "1h02m"]


@dataclasses.dataclass
class _Trial:
    """What Tune's table and the watchdog read of a trial."""

    trial_id: str
    status: str = "RUNNING"
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    last_result: dict[str, Any] = dataclasses.field(default_factory=dict)
    error_file: str | None = None
    local_experiment_path: str = "/searches/demo/pawsx"
    evaluated_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    temporary_state: Any = None

    def __str__(self) -> str:
        return f"run_trial_{self.trial_id}"


def _rows(printed: str) -> dict[str, dict[str, str]]:
    """Tune's printed status table (psql format): trial name -> {column: cell}."""
    table = [line for line in printed.splitlines() if line.startswith("|") and not line.startswith("|-")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = {}
    for line in table[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def test_the_status_table_shows_phase_step_eta_and_flags_a_silent_trial(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tune's status table carries each trial's progress; the watchdog's flagged trial says so."""
    now = [0.0]
    watch = StallWatch(60.0, lambda trial, silent: None, lambda trial: None, clock=lambda: now[0])
    table = ProgressTable("zero_shot_avg", watch, ProgressSettings(every_s=30.0))
    table.setup(start_time=time.time(), metric="zero_shot_avg", mode="max")  # as Tune does
    training, silent, finished = _Trial("a"), _Trial("b"), _Trial("c", status="TERMINATED")
    stopped = _Trial("d", status="TERMINATED")  # by ASHA, in the target phase
    trials = [training, silent, finished, stopped]
    for trial in trials:
        watch.on_trial_start(0, trials, trial)
        trial.temporary_state = types.SimpleNamespace(location="10.0.0.1:4242")
    progress = {
        PROGRESS_PHASE: "target",
        PROGRESS_STEP: 120,
        PROGRESS_TOTAL: 500,
        PROGRESS_ETA_S: 190.0,
        PROGRESS_LOSS: 0.41234,
        PROGRESS_DEV: 73.1,
    }
    training.last_result = progress
    silent.last_result = {PROGRESS_PHASE: "intermediate", PROGRESS_STEP: 7, PROGRESS_TOTAL: 40}
    stopped.last_result = {**progress, PROGRESS_STEP: 10}
    table.should_report(trials)
    # A result without progress (the phase's own) keeps the last progress; the final one says done.
    training.last_result = {"target_step": 120, "en_dev": 73.1}
    finished.last_result = {FINISHED: 1.0, "zero_shot_avg": 61.0}
    table.should_report(trials)
    now[0] = 90.0
    watch.on_trial_result(0, trials, training, {})  # it reports; the other stays silent
    watch.on_step_end(0, trials)

    table.report(trials, False)
    rows = _rows(capsys.readouterr().out)

    columns = ["phase", "step", "eta", "loss", "dev", "stalled", "zero_shot_avg"]
    assert {name: [row.get(c) for c in columns] for name, row in rows.items()} == {
        "run_trial_a": ["target", "120/500", "3m10s", "0.4123", "73.1", "", ""],
        "run_trial_b": ["intermediate", "7/40", "", "", "", "no report for 1m30s", ""],
        "run_trial_c": ["done", "", "", "", "", "", "61"],
        "run_trial_d": [
            "stopped",
            "10/500",
            "",
            "0.4123",
            "73.1",
            "",
            "",
        ],  # tabulate prints numbers as numbers
    }

    # Once the silent trial reports again, the flag and its column go.
    watch.on_trial_result(0, trials, silent, {})
    table.report(trials, True)
    rows = _rows(capsys.readouterr().out)
    assert "stalled" not in rows["run_trial_b"] and rows["run_trial_b"]["phase"] == "intermediate"


def test_xstilts_run_with_a_bad_interval_is_one_line(
    tiny_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``xstilts run`` refuses a bad XSTILTS_PROGRESS_EVERY_S in one line before it trains."""
    from search.cli import main

    config_path = tmp_path / "config.yaml"
    tiny_config(tmp_path / "out", "pawsx").save(config_path)
    monkeypatch.setenv(PROGRESS_EVERY_ENV, "soon")

    code = main(["run", "--config", str(config_path), "--backend", "local"])

    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0] == f"xstilts: error: {PROGRESS_EVERY_ENV}='soon': expected a number of seconds >= 0"
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_redrawn_bar_not_lines() -> None:
    """On a terminal the phase is a tqdm bar redrawn in place (carriage returns), with loss and dev beside it."""
    clock, stream = FakeClock(), _Terminal()
    shown = PhaseProgress("target", 50, examples_per_unit=16, stream=stream, clock=clock)
    for step in range(1, 51):
        clock.now += 1.0
        shown.advance(step, loss=0.25)
    shown.set_dev(81.5)
    shown.close()
    out = stream.getvalue()
    assert "xstilts: target" not in out  # no periodic lines
    assert out.count("\n") == 1 and out.count("\r") >= 2  # one bar, redrawn, left on screen at the end
    last = out.rsplit("\r", 1)[1]
    assert last.startswith("xstilts target: 100%") and "50/50" in last
    assert "loss 0.2500" in last and "dev 81.50" in last
