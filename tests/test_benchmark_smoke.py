"""Smoke runs of the benchmarks whose numbers the README quotes (the numbers come from full runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(script: str, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python benchmarks/<script> args...`` in ``cwd``; fails the test unless it exits 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_throughput_benchmark_smoke(tmp_path: Path) -> None:
    done = _benchmark(
        "throughput.py",
        *("--targets", "udpos", "--short", "1", "--long", "3", "--repeats", "1"),
        cwd=tmp_path,
    )
    row = next(line for line in done.stdout.splitlines() if line.startswith("| tiny | udpos |"))
    # Both loops ran and were timed. Two extra steps of the tiny encoder (milliseconds) can drown in the
    # noise of the fixed costs on a loaded machine: then the row and the RESULT line say so, never a
    # negative throughput.
    cells = [cell.strip() for cell in row.strip("|").split("|")[2:]]
    ours, theirs = float(cells[0]), float(cells[1])
    if ours > 0 and theirs > 0:
        assert all(float(c) > 0 for c in cells[2:]), row
        # The ratio of the two throughputs, printed to 2 decimals, against the tokens/s columns (whole numbers:
        # the seconds are rounded to 0.1 ms, too coarse for a ratio when a tiny step takes a few milliseconds).
        ratio = float(cells[2]) / float(cells[3])
        assert float(cells[4]) == pytest.approx(ratio, rel=0.01, abs=0.0051), row
        assert re.search(r"^RESULT throughput_ratio_min=\d+\.\d\d$", done.stdout, re.M), done.stdout[-500:]
    else:
        assert cells[2:] == ["n/a", "n/a", "n/a"], row
        assert re.search(r"^RESULT throughput_ratio_min=n/a$", done.stdout, re.M), done.stdout[-500:]


def test_gpu_perf_without_a_gpu_says_so_in_one_line(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the script would measure")
    done = _benchmark("gpu_perf.py", cwd=tmp_path, timeout=120)
    assert done.stdout.splitlines() == [
        "gpu_perf: no GPU (torch.cuda.is_available() is False): nothing measured"
    ]


@pytest.mark.slow
@pytest.mark.soak  # four fresh processes, about 40 s: CI runs the no-GPU line
def test_gpu_perf_code_paths_on_cpu(tmp_path: Path) -> None:
    """Every row of the GPU script (xstilts' loop and the ``Trainer``, without and with ZeRO 2) on the tiny
    shape on CPU, so a GPU session finds no broken code path (58 s at load average 3.5, 87 s at 8.7: four
    fresh processes, each importing torch, transformers and DeepSpeed)."""
    done = _benchmark(
        "gpu_perf.py",
        *("--cpu", "--shapes", "tiny", "--batch", "4", "--seq", "16", "--min-len", "8"),
        *("--warmup", "1", "--steps", "2", "--scratch", str(tmp_path / "scratch")),
        cwd=tmp_path,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("| tiny |")]
    assert [row.split("|")[2:4] for row in rows] == [
        [" xstilts ", " 0 "],
        [" xstilts ", " 2 "],
        [" Trainer ", " 0 "],
        [" Trainer ", " 2 "],
    ], done.stdout
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[3] and cells[4], done.stdout  # a failed row has no figures, only its note
        assert float(cells[3]) > 0 and float(cells[4]) > 0, row  # s/step, tokens/s
        assert cells[7] == "n/a", row  # no MFU without a GPU's peak
    ratios = [float(row.strip("|").split("|")[5]) for row in rows[:2]]
    assert re.search(
        rf"^RESULT gpu=cpu throughput_ratio_min={min(ratios):.2f} mfu_large=n/a$", done.stdout, re.M
    )


@pytest.mark.slow
def test_imports_benchmark_smoke(tmp_path: Path) -> None:
    """One fresh process per row on this tree: a table of four rows and the RESULT line."""
    done = _benchmark("imports.py", "--trees", str(ROOT), "--repeats", "1", cwd=tmp_path)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 5, done.stdout  # the header and four imports
    assert all(float(row.split("|")[2]) > 0 for row in rows[1:]), done.stdout
    assert re.fullmatch(
        r"RESULT driver_import_s=[0-9.]+ worker_import_s=[0-9.]+", done.stdout.splitlines()[-1]
    )
