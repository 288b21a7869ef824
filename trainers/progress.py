"""What long work shows while it runs: a bar on a terminal, a line every few seconds elsewhere.

Only rank 0 prints, to stderr (stdout stays the command's output, e.g. ``xstilts run``'s scores table).
On an interactive terminal a phase is a tqdm bar (phase, step / total, rate, loss, last dev score, ETA);
on any other stream (CI, ``ray submit``, a Ray worker's log, a file) the same facts are one line every
``XSTILTS_PROGRESS_EVERY_S`` seconds. Every rank also agrees, once per phase, on a step cadence at which
the phase reports ``progress_metrics()`` to the driver (Tune's status table), so that a trial is seen
moving between its evaluations and checkpoints; ranks must agree because a report is a collective.

Per step the cost is a clock read and a comparison (no device sync: the loss is a float already).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, SupportsFloat, TextIO

from trainers.errors import UserError
from trainers.keys import (
    PROGRESS_DEV,
    PROGRESS_ETA_S,
    PROGRESS_LOSS,
    PROGRESS_PHASE,
    PROGRESS_RATE,
    PROGRESS_STEP,
    PROGRESS_TOTAL,
)

PROGRESS_EVERY_ENV = "XSTILTS_PROGRESS_EVERY_S"
"""Environment variable: seconds between progress lines on a non-interactive stream (and between reports)."""


class ProgressSettingError(UserError, ValueError):
    """A bad ``XSTILTS_PROGRESS_EVERY_S``."""


@dataclass(frozen=True)
class ProgressSettings:
    """How progress is shown."""

    every_s: float = 30.0
    """Seconds between progress lines on a non-interactive stream, and the aim between reports to the driver."""

    @classmethod
    def from_env(cls) -> ProgressSettings:
        """``XSTILTS_PROGRESS_EVERY_S`` when set (a number of seconds >= 0), else the default."""
        raw = os.environ.get(PROGRESS_EVERY_ENV, "").strip()
        if not raw:
            return cls()
        try:
            every_s = float(raw)
        except ValueError:
            every_s = -1.0
        if not math.isfinite(every_s) or every_s < 0:
            raise ProgressSettingError(f"{PROGRESS_EVERY_ENV}={raw!r}: expected a number of seconds >= 0")
        return cls(every_s)


_rank: int | None = None


def set_rank(rank: int | None) -> None:
    """Which rank this process is (the per-worker function sets it; only rank 0 prints); ``None``: ``RANK``."""
    global _rank
    _rank = rank


def printing_rank() -> bool:
    """Whether this process prints progress: rank 0 (from ``set_rank``, else the ``RANK`` variable)."""
    rank = _rank if _rank is not None else int(os.environ.get("RANK", "0"))
    return rank == 0


def interactive(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal a bar can redraw on."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def _line(text: str, stream: TextIO) -> None:
    # A write, not print(): Ray Train's workers patch print() to also log it, and every line came out twice.
    stream.write(f"xstilts: {text}\n")
    stream.flush()


def duration(seconds: float) -> str:
    """``1h02m``, ``3m10s`` or ``42s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _rate(per_s: float, unit: str) -> str:
    return f"{per_s:.2f} {unit}/s" if per_s >= 1 else f"{1 / per_s:.1f} s/{unit}" if per_s > 0 else ""


class PhaseProgress:
    """Progress of one phase (steps) or evaluation (languages); call ``advance`` on every rank."""

    def __init__(
        self,
        phase: str,
        total: int,
        *,
        start: int = 0,
        unit: str = "step",
        examples_per_unit: int = 0,
        world_size: int = 1,
        calibrate_after: int = 10,
        settings: ProgressSettings | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.phase, self.total, self.start, self.unit = phase, total, start, unit
        self.examples_per_unit = examples_per_unit
        """Examples one unit (an optimizer step) consumes on all ranks together; 0: no examples/s."""
        self.world_size = world_size
        self.calibrate_after = max(1, min(calibrate_after, total - start))
        self.settings = settings or ProgressSettings.from_env()
        self.clock = clock
        self.stream = stream if stream is not None else sys.stderr
        self.printing = printing_rank()
        self.step = start
        self.loss: SupportsFloat | None = None
        """The latest loss: a device tensor, read (a wait for the device) only when shown or reported."""
        self.dev: float | None = None
        self.report_every: int | None = None
        """Units between progress reports, agreed by every rank after ``calibrate_after`` units."""
        self._began = clock()
        self._first_done: float | None = None
        self._last_line = self._began
        self._bar: Any = None
        if not self.printing:
            return
        if interactive(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                initial=start,
                desc=f"xstilts {phase}",
                unit=unit,
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.5,
            )
        else:
            resumed = f", resuming at {start}" if start else ""
            self._print(f"{phase}: {total} {unit}s{resumed}")

    def _print(self, text: str) -> None:
        _line(text, self.stream)

    def rate(self) -> float:
        """Units per second since the phase began (or resumed)."""
        elapsed = self.clock() - self._began
        return (self.step - self.start) / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        """Seconds left at the rate so far; ``None`` before the first unit."""
        rate = self.rate()
        return (self.total - self.step) / rate if rate > 0 else None

    def line(self) -> str:
        """The facts of one progress line: phase, step / total, rate, loss, dev, ETA."""
        parts = [
            f"{self.phase} {self.unit} {self.step}/{self.total} ({100 * self.step / max(1, self.total):.0f}%)"
        ]
        rate = self.rate()
        speed = _rate(rate, self.unit)
        if self.examples_per_unit and rate > 0:
            speed += f", {rate * self.examples_per_unit:.1f} ex/s"
        if speed:
            parts.append(speed)
        if self.loss is not None:
            parts.append(f"loss {float(self.loss):.4f}")
        if self.dev is not None:
            parts.append(f"dev {self.dev:.2f}")
        eta = self.eta_s()
        if eta is not None and self.step < self.total:
            parts.append(f"eta {duration(eta)}")
        return " | ".join(parts)

    def advance(self, step: int, loss: SupportsFloat | None = None) -> bool:
        """Record ``step`` (done); print if due; return whether a progress report to the driver is due."""
        now = self.clock()
        self.step = step
        if loss is not None:
            self.loss = loss
        if self.printing:
            self._show(now)
        done = step - self.start
        if self.report_every is None:
            if done == 1:
                self._first_done = now
            if done >= self.calibrate_after:
                self.report_every = self._agree_cadence(now, done)
            return False
        return done % self.report_every == 0 and step < self.total

    def set_dev(self, score: float) -> None:
        """The latest dev score, shown from now on."""
        self.dev = score

    def _show(self, now: float) -> None:
        if self._bar is not None:
            self._bar.update(self.step - self._bar.n)
            if now - self._last_line >= 0.5:  # the postfix only as often as the bar redraws
                self._last_line = now
                self._bar.set_postfix_str(self._postfix(), refresh=False)
        elif now - self._last_line >= self.settings.every_s:
            self._last_line = now
            self._print(self.line())

    def _postfix(self) -> str:
        parts = []
        if self.examples_per_unit:
            parts.append(f"{self.rate() * self.examples_per_unit:.1f} ex/s")
        if self.loss is not None:
            parts.append(f"loss {float(self.loss):.4f}")
        if self.dev is not None:
            parts.append(f"dev {self.dev:.2f}")
        return ", ".join(parts)

    def _agree_cadence(self, now: float, done: int) -> int:
        """Units per ``every_s`` at rank 0's measured pace (the first unit, warm-up, left out when possible)."""
        if done > 1 and self._first_done is not None:
            per_unit = (now - self._first_done) / (done - 1)
        else:
            per_unit = now - self._began
        every = max(1, math.ceil(self.settings.every_s / per_unit)) if per_unit > 0 else 1
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                agreed = [every]
                dist.broadcast_object_list(agreed, src=0)  # a report is a collective: ranks must agree
                every = int(agreed[0])
        return every

    def metrics(self) -> dict[str, Any]:
        """What the driver shows of this phase (Tune's status table): phase, step, total, ETA, rate, loss, dev."""
        eta = self.eta_s()
        out: dict[str, Any] = {
            PROGRESS_PHASE: self.phase,
            PROGRESS_STEP: self.step,
            PROGRESS_TOTAL: self.total,
            PROGRESS_ETA_S: 0.0 if self.step >= self.total else (eta if eta is not None else float("nan")),
            PROGRESS_RATE: self.rate() * (self.examples_per_unit or 1),
        }
        if self.loss is not None:
            out[PROGRESS_LOSS] = float(self.loss)
        if self.dev is not None:
            out[PROGRESS_DEV] = self.dev
        return out

    def close(self) -> None:
        """The last line (or the finished bar)."""
        if not self.printing:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.close()
            self._bar = None
        else:
            self._print(f"{self.line()} | done in {duration(self.clock() - self._began)}")


@contextlib.contextmanager
def stage(what: str, stream: TextIO | None = None) -> Iterator[None]:
    """One line when ``what`` starts and one when it ends (rank 0), for work with no steps to count."""
    out = stream if stream is not None else sys.stderr
    if not printing_rank():
        yield
        return
    began = time.monotonic()
    _line(f"{what} ...", out)
    yield
    _line(f"{what}: done in {duration(time.monotonic() - began)}", out)


def quiet_library_bars(rank: int, stream: TextIO | None = None) -> None:
    """Library progress bars (downloads, dataset maps) only on rank 0 of an interactive terminal.

    Elsewhere they would interleave across workers, or fill a log with redraws; ``stage`` lines say the same.
    """
    if rank == 0 and interactive(stream if stream is not None else sys.stderr):
        return
    import datasets
    import huggingface_hub.utils
    import transformers

    transformers.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
    datasets.disable_progress_bars()


__all__ = [
    "PROGRESS_EVERY_ENV",
    "PhaseProgress",
    "ProgressSettingError",
    "ProgressSettings",
    "duration",
    "interactive",
    "printing_rank",
    "quiet_library_bars",
    "set_rank",
    "stage",
]
