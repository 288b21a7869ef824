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
    # Both loops ran and were timed. Two extra steps of the tiny encoder (milliseconds) can drown in the
    # noise of the fixed costs on a loaded machine: then the row and the RESULT line say so, never a
    # negative throughput.
    cells = [cell.strip() for cell in row.strip("|").split("|")[2:]]
    ours, theirs = float(cells[0]), float(cells[1])
    if ours > 0 and theirs > 0:
        assert all(float(c) > 0 for c in cells[2:]), row
        assert float(cells[4]) == pytest.approx(theirs / ours, abs=0.01), row  # the ratio of the two
        assert re.search(r"^RESULT throughput_ratio_min=\d+\.\d\d$", done.stdout, re.M), done.stdout[-500:]
    else:
        assert cells[2:] == ["n/a", "n/a", "n/a"], row
        assert re.search(r"^RESULT throughput_ratio_min=n/a$", done.stdout, re.M), done.stdout[-500:]
