"""Smoke runs of the benchmarks whose numbers the README quotes (the numbers come from full runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_throughput_benchmark_smoke(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "throughput.py"),
            *("--targets", "udpos", "--short", "1", "--long", "3", "--repeats", "1"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| tiny | udpos |"))
    # Both loops measured: positive step times and tokens per second, and their ratio.
    numbers = [float(cell) for cell in row.strip("|").split("|")[2:]]
    assert len(numbers) == 5 and all(n > 0 for n in numbers), row
    assert re.search(r"^RESULT throughput_ratio_min=\d+\.\d\d$", done.stdout, re.M), done.stdout[-500:]
