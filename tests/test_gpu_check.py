"""benchmarks/gpu_check.py: one line and exit status 1 where there is no GPU; on CPU with ``--smoke-on-cpu`` the
same code runs end to end on the tiny encoder (ZeRO-3 trial and the freeze-depth table, no memory figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_without_a_gpu_it_says_so_in_one_line(child_env: dict[str, str]) -> None:
    env = {**child_env, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("gpu_check: no GPU: ") and "nothing to check" in line


@pytest.mark.slow
@pytest.mark.soak  # the GPU check's code paths on CPU: CI runs the no-GPU line
def test_the_check_runs_end_to_end_on_cpu_with_the_tiny_encoder(
    child_env: dict[str, str], cache_dir: Path, tmp_path: Path
) -> None:
    """About 25 s at load 2: one ZeRO-3 engine and three ZeRO-0 ones (depths 0, 1, 2) in a child process."""
    out = tmp_path / "check.json"
    command = [sys.executable, str(SCRIPT), "--smoke-on-cpu", "--cache-dir", str(cache_dir)]
    command += ["--batch", "4", "--length", "16", "--steps", "2", "--json", str(out)]
    result = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    trial = figures["zero3_trial"]
    assert trial["zero_stage"] == 3 and trial["encoder"] == "tiny" and trial["peak_bytes"] is None
    assert trial["plan_bytes"] > 0 and trial["step_s"] > 0
    assert "whole_load_setup_peak_bytes" in trial  # the same start from a whole load ran too
    table = figures["freeze_table"]
    assert [row["depth"] for row in table] == [0, 1, 2]  # the quarters of 2 layers, without repeats
    trainable = [row["trainable"] for row in table]
    assert trainable == sorted(trainable, reverse=True) and trainable[0] > trainable[-1]
    plans = [row["plan_bytes"] for row in table]
    assert plans == sorted(plans, reverse=True)  # the plan shrinks with depth as the trained part does
    assert "memory plan:" in result.stdout and "plan MB" in result.stdout


@pytest.mark.slow
@pytest.mark.soak  # the GPU check's stand-in on CPU: CI runs the no-GPU line
def test_the_plain_torch_stand_in_runs_on_cpu(
    child_env: dict[str, str], cache_dir: Path, tmp_path: Path
) -> None:
    """What a GPU machine without DeepSpeed runs: the encoder and a head on torch's AdamW, beside the plan
    (about 17 s at load 2, most of it the child process's imports)."""
    out = tmp_path / "check.json"
    command = [sys.executable, str(SCRIPT), "--smoke-on-cpu", "--plain-torch", "--cache-dir", str(cache_dir)]
    command += ["--batch", "4", "--length", "16", "--steps", "1", "--json", str(out)]
    result = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures) == {"versions", "device", "torch_trial"}  # no DeepSpeed row ran
    assert figures["torch_trial"]["plan_bytes"] > 0 and figures["torch_trial"]["peak_bytes"] is None
    assert "--plain-torch: the ZeRO-3 trial and the freeze table are skipped" in result.stdout
