"""Start-up cost of a trial: plain process vs one Ray Train + DeepSpeed job per trial vs one job per phase.

Runs the same tiny plan (a 2-step intermediate phase, a 2-step target phase, evaluation) three ways in
one run and prints a table of wall times and ratios. ``python benchmarks/startup.py``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from search.run import run_transfer
from trainers.config import TransferConfig


def config(cache: Path, out: Path, **overrides: object) -> TransferConfig:
    """A tiny plan: pawsx with a qqp intermediate phase, 2 steps each."""
    data = {
        "target": {"task": "pawsx", "max_steps": 2, "batch_size": 8},
        "intermediate": {"tasks": ["qqp"], "max_steps": 2, "batch_size": 8},
        "model": {"name_or_path": "tiny", "max_seq_length": 64, "doc_stride": 32},
        "data": {"cache_dir": str(cache), "max_train_examples": 64, "max_eval_examples": 16},
        "output_dir": str(out),
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            data.setdefault(section, {})[name] = value  # type: ignore[index]
        else:
            data[section] = value
    return TransferConfig.from_dict(data)


def timed(fn: object) -> tuple[float, dict]:
    """Wall seconds and the metrics of one call."""
    start = time.perf_counter()
    metrics = fn()  # type: ignore[operator]
    return time.perf_counter() - start, metrics


def main() -> None:
    """Measure and print the table."""
    root = Path(tempfile.mkdtemp(prefix="xstilts-bench-"))
    cache = root / "cache"
    try:
        # Warm-up: build the miniature, the tiny encoder and the feature cache once.
        run_transfer(config(cache, root / "warm"), backend="local")
        rows = []
        seed = 1
        # Each measured run uses a new seed so the intermediate phase is trained, not reused.
        wall, m = timed(lambda: run_transfer(config(cache, root / "a", seed=seed), backend="local"))
        rows.append(("plain process, all phases", wall, m["time/startup_s"]))
        seed += 1
        wall, m = timed(
            lambda: run_transfer(config(cache, root / "b", seed=seed), storage_path=str(root / "ray"))
        )
        rows.append(("Ray Train job, all phases (xstilts)", wall, m["time/startup_s"]))
        seed += 1
        # One job per phase: phase 1 alone (a retrieval target has no target phase), then phase 2+3
        # reusing the checkpoint phase 1 published.
        first = config(cache, root / "c1", seed=seed, target={"task": "tatoeba"})
        wall1, m1 = timed(lambda: run_transfer(first, storage_path=str(root / "ray")))
        second = config(cache, root / "c2", seed=seed)
        wall2, m2 = timed(lambda: run_transfer(second, storage_path=str(root / "ray")))
        rows.append(
            ("Ray Train job per phase (2 jobs)", wall1 + wall2, m1["time/startup_s"] + m2["time/startup_s"])
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = rows[0][1]
    print(f"{'how the plan runs':<40}{'wall s':>9}{'start-up s':>12}{'wall / plain':>14}")
    for name, wall, startup in rows:
        print(f"{name:<40}{wall:>9.1f}{startup:>12.1f}{wall / base:>14.2f}")
    print(f"per-phase jobs / one job per trial: {rows[2][1] / rows[1][1]:.2f}x wall time")


if __name__ == "__main__":
    main()
