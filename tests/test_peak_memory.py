"""Each training phase logs its peak memory (trainers/peak_memory.py): on CPU the process's peak resident set
over the phase, reset when the phase starts; a tiny run reports it for both phases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from trainers import keys
from trainers.peak_memory import MIB, PhasePeakMemory
from trainers.worker import Plan, run_local

BLOCK_MIB = 256

linux_only = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")


@linux_only
def test_a_phase_sees_its_own_peak_and_not_an_earlier_ones() -> None:
    rss_peak = keys.MEMORY_RSS_PEAK_MIB.format(phase="a")
    first = PhasePeakMemory(torch.device("cpu"))
    block = bytearray(BLOCK_MIB * MIB)  # zero-filled: every page is touched, so resident
    del block
    big = first.metrics("a")[rss_peak]
    second = PhasePeakMemory(torch.device("cpu"))  # starts after the block was freed
    small = second.metrics("a")[rss_peak]

    assert big - small >= 0.9 * BLOCK_MIB  # the first phase's peak held the block; the second's did not


@linux_only
def test_a_tiny_run_logs_each_phases_peak_memory(tiny_config: Any, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", "pawsx", ["qqp"], ["seed=5"])
    metrics = run_local(Plan(config, cache_root=str(tmp_path / "intermediate-cache")))

    results = json.loads((Path(config.output_dir) / "results.json").read_text())
    for phase in ("intermediate", "target"):
        peak = metrics[keys.MEMORY_RSS_PEAK_MIB.format(phase=phase)]
        # The whole process: at least torch and the tiny model resident, far less than the machine has.
        assert 100 < peak < 16 * 1024
        assert results[keys.MEMORY_RSS_PEAK_MIB.format(phase=phase)] == peak
        assert keys.MEMORY_CUDA_PEAK_MIB.format(phase=phase) not in metrics  # a CPU run measures no GPU
