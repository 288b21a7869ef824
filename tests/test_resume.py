"""A phase killed mid-way (SIGKILL) resumes from its last checkpoint when the same command is rerun.

The run is ``python -m trainers --config C.yaml``, a plain process: it checkpoints every 5 steps into
``<output_dir>/checkpoints`` and names the newest in ``checkpoints/latest``; the rerun must continue the
killed phase from that step (not from 0) and must not retrain a finished intermediate phase.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainers.checkpoint_cache import CheckpointCache

# Each test trains in a child process twice (killed at a checkpoint, then rerun): end to end, and the two
# take most of the fast tier's time, so they run with the slow tier (CI runs both).
pytestmark = pytest.mark.slow

EVERY = 5
TIMEOUT_S = 240


def _latest_state(output_dir: Path) -> dict[str, Any] | None:
    """``state.json`` of the checkpoint ``checkpoints/latest`` names, or None."""
    pointer = output_dir / "checkpoints" / "latest"
    try:
        state_file = Path(pointer.read_text().strip()) / "state.json"
        return dict(json.loads(state_file.read_text()))
    except (OSError, ValueError):
        return None  # not written yet, or being replaced right now


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run_until_checkpoint(
    command: list[str], env: dict[str, str], output_dir: Path, phase: str, log: Path
) -> int:
    """Start ``command``, SIGKILL it once it has checkpointed ``phase``; the checkpoint step it left."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            state = _latest_state(output_dir)
            if state is not None and state.get("phase") == phase:
                os.killpg(process.pid, signal.SIGKILL)
                break
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended (rc {process.returncode}) before a {phase} checkpoint:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.02)
        else:
            pytest.fail(f"no {phase} checkpoint within {TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run had finished before it was killed: make it longer"
    state = _latest_state(output_dir)  # read again: it may have moved on between the poll and the kill
    assert state is not None and state["phase"] == phase
    assert not (output_dir / "results.json").exists()
    return int(state["step"])


@dataclass
class KilledRun:
    """A ``python -m trainers`` run SIGKILLed once it had checkpointed one phase."""

    config: Any
    command: list[str]
    killed_at: int
    """The step of the checkpoint the killed run left."""
    first_lines: list[dict[str, Any]]
    """What the killed run reported (``metrics.jsonl``)."""

    @property
    def cache(self) -> CheckpointCache:
        return CheckpointCache(Path(self.config.data.cache_dir) / "intermediate")

    def rerun(self, env: dict[str, str], log: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run the same command to the end: its results and what it reported (after the killed run's)."""
        result = subprocess.run(self.command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        log.write_text(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr[-3000:]
        output_dir = Path(self.config.output_dir)
        results = json.loads((output_dir / "results.json").read_text())
        return results, _read_jsonl(output_dir / "metrics.jsonl")[len(self.first_lines) :]


def _kill_in(
    phase: str,
    tiny_config: Any,
    env: dict[str, str],
    tmp_path: Path,
    intermediate: str,
    seed: int,
    total: int,
) -> KilledRun:
    """Run pawsx with ``intermediate``, ``phase`` checkpointing every EVERY of ``total`` steps (the other
    phase 3 steps), and kill it at its first ``phase`` checkpoint. ``seed`` gives the intermediate
    checkpoint a key of its own: no other test publishes it."""
    other = "target" if phase == "intermediate" else "intermediate"
    overrides = [f"{phase}.checkpoint_every={EVERY}", f"{phase}.max_steps={total}", f"{other}.max_steps=3"]
    config = tiny_config(tmp_path / "run", "pawsx", [intermediate], [*overrides, f"seed={seed}"])
    config_path = tmp_path / "config.yaml"
    config.save(config_path)
    command = [sys.executable, "-m", "trainers", "--config", str(config_path)]
    killed_at = _run_until_checkpoint(command, env, Path(config.output_dir), phase, tmp_path / "first.log")
    assert 0 < killed_at < total and killed_at % EVERY == 0
    return KilledRun(config, command, killed_at, _read_jsonl(Path(config.output_dir) / "metrics.jsonl"))


def test_target_phase_resumes_from_its_checkpoint(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    total = 40
    run = _kill_in("target", tiny_config, child_env, tmp_path, "qqp", seed=11, total=total)
    killed_at = run.killed_at
    assert run.first_lines[0]["intermediate_reused"] == 0.0  # the first run trained phase 1 and published it
    (entry,) = [e for e in run.cache.entries() if e["key_fields"]["seed"] == 11]

    results, second_lines = run.rerun(child_env, tmp_path / "second.log")

    # Phase 1 came from the cache: not retrained.
    assert second_lines[0]["intermediate_reused"] == 1.0 and second_lines[0]["target_step"] == 0
    assert results["intermediate_reused"] == 1.0
    assert "time/intermediate_s" not in results
    # Phase 2 continued from the checkpoint: its first report is the next checkpoint after it, not step 5.
    target_steps = [line["target_step"] for line in second_lines if line.get("target_step", 0) > 0]
    assert target_steps[0] == min(killed_at + EVERY, total), target_steps
    assert target_steps == sorted(target_steps) and target_steps[-1] == total
    assert results["target/resumed_from_step"] == killed_at
    assert results["target_step"] == total and results["finished"] == 1.0
    assert {"zero_shot/en", "zero_shot/de", "zero_shot/es"} <= set(results)
    # The cache entry is the one the first run published.
    (again,) = [e for e in run.cache.entries() if e["key"] == entry["key"]]
    assert again["published_at"] == entry["published_at"]


def test_intermediate_phase_resumes_from_its_checkpoint(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    total = 40
    run = _kill_in("intermediate", tiny_config, child_env, tmp_path, "mnli", seed=7, total=total)
    killed_at, cache = run.killed_at, run.cache
    assert not [e for e in cache.entries() if e["key_fields"]["seed"] == 7]  # killed before publishing

    results, second_lines = run.rerun(child_env, tmp_path / "second.log")

    inter_steps = [line["intermediate/step"] for line in second_lines if "intermediate/step" in line]
    assert inter_steps[0] == min(killed_at + EVERY, total), inter_steps
    assert results["intermediate/resumed_from_step"] == killed_at
    assert results["intermediate/step"] == total
    assert results["intermediate_reused"] == 0.0  # phase 1 was run (continued), not taken from the cache
    assert results["target/resumed_from_step"] == 0  # the target phase had not started: it starts at 0
    assert results["target_step"] == 3 and results["finished"] == 1.0
    (entry,) = [e for e in cache.entries() if e["key_fields"]["seed"] == 7]
    assert entry["metrics"]["intermediate/resumed_from_step"] == killed_at
