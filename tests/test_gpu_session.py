"""benchmarks/gpu_session.sh, the one command a session lent a GPU runs: its argument check and, in its dry
mode, the budget that bounds every step (the GPU steps themselves need a GPU and are not run here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_an_argument_is_refused_in_one_line_before_anything_runs(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(SCRIPT), "--steps", "3"], capture_output=True, text=True, env=env)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "xstilts: error: gpu_session.sh takes no arguments (got: --steps 3); see --help"
    ]
    assert not (tmp_path / "out").exists()  # nothing installed, nothing logged


def test_help_prints_the_device_call_and_how_to_rebuild_the_wheels() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, check=True)

    assert 'run(command="bash benchmarks/gpu_session.sh", carry=[".whl"]' in done.stdout
    assert "pip wheel --no-deps --no-build-isolation -w .whl deepspeed==" in done.stdout
    assert "#" not in done.stdout.splitlines()[0]  # the comment markers are stripped


def test_steps_past_the_budget_are_skipped_and_the_run_says_so(tmp_path: Path) -> None:
    """A budget of 1 s leaves no step its 20 s minimum: all four are skipped, the exit status is 124 (the
    timeout's), and $OUT holds the session log. With the wheels under .whl/ the dry install and import
    check run first (about 10 s); without them the script says so and goes on."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "GPU_SESSION_DRY": "1", "GPU_SESSION_BUDGET_S": "1"}
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)

    assert done.returncode == 124, done.stdout[-3000:] + done.stderr[-3000:]
    log = (out / "session.log").read_text()
    for step in ("import", "gpu_check", "gpu_perf_large", "gpu_perf_base"):
        assert f"gpu_session: {step}: skipped" in log
    assert "done at" in log and "exit 124" in log
    assert sorted(path.name for path in out.iterdir()) == ["session.log"]  # no step ran, so no step log
