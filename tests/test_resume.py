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
from pathlib import Path
from typing import Any

import pytest

from trainers.checkpoint_cache import CheckpointCache

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


def _rerun(command: list[str], env: dict[str, str], log: Path) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]


def _command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "trainers", "--config", str(config_path)]


def test_target_phase_resumes_from_its_checkpoint(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    output_dir = tmp_path / "run"
    total = 40
    config = tiny_config(
        output_dir,
        "pawsx",
        ["qqp"],
        [
            f"target.checkpoint_every={EVERY}",
            f"target.max_steps={total}",
            "intermediate.max_steps=3",
            "seed=11",  # a key of its own: no other test publishes this intermediate checkpoint
        ],
    )
    config_path = tmp_path / "config.yaml"
    config.save(config_path)
    command = _command(config_path)

    killed_at = _run_until_checkpoint(command, child_env, output_dir, "target", tmp_path / "first.log")
    assert 0 < killed_at < total and killed_at % EVERY == 0
    first_lines = _read_jsonl(output_dir / "metrics.jsonl")
    assert first_lines[0]["intermediate_reused"] == 0.0  # the first run trained phase 1 and published it
    entries = CheckpointCache(Path(config.data.cache_dir) / "intermediate").entries()
    (entry,) = [e for e in entries if e["key_fields"]["seed"] == 11]

    _rerun(command, child_env, tmp_path / "second.log")

    results = json.loads((output_dir / "results.json").read_text())
    second_lines = _read_jsonl(output_dir / "metrics.jsonl")[len(first_lines) :]
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
    (again,) = [
        e
        for e in CheckpointCache(Path(config.data.cache_dir) / "intermediate").entries()
        if e["key"] == entry["key"]
    ]
    assert again["published_at"] == entry["published_at"]


def test_intermediate_phase_resumes_from_its_checkpoint(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    output_dir = tmp_path / "run"
    total = 40
    config = tiny_config(
        output_dir,
        "pawsx",
        ["mnli"],
        [
            f"intermediate.checkpoint_every={EVERY}",
            f"intermediate.max_steps={total}",
            "target.max_steps=3",
            "seed=7",  # a key of its own: no other test publishes this intermediate checkpoint
        ],
    )
    config_path = tmp_path / "config.yaml"
    config.save(config_path)
    command = _command(config_path)

    killed_at = _run_until_checkpoint(command, child_env, output_dir, "intermediate", tmp_path / "first.log")
    assert 0 < killed_at < total and killed_at % EVERY == 0
    first_lines = _read_jsonl(output_dir / "metrics.jsonl")
    cache = CheckpointCache(Path(config.data.cache_dir) / "intermediate")
    assert not [e for e in cache.entries() if e["key_fields"]["seed"] == 7]  # killed before publishing

    _rerun(command, child_env, tmp_path / "second.log")

    results = json.loads((output_dir / "results.json").read_text())
    second_lines = _read_jsonl(output_dir / "metrics.jsonl")[len(first_lines) :]
    inter_steps = [line["intermediate/step"] for line in second_lines if "intermediate/step" in line]
    assert inter_steps[0] == min(killed_at + EVERY, total), inter_steps
    assert results["intermediate/resumed_from_step"] == killed_at
    assert results["intermediate/step"] == total
    assert results["intermediate_reused"] == 0.0  # phase 1 was run (continued), not taken from the cache
    assert results["target/resumed_from_step"] == 0  # the target phase had not started: it starts at 0
    assert results["target_step"] == 3 and results["finished"] == 1.0
    (entry,) = [e for e in cache.entries() if e["key_fields"]["seed"] == 7]
    assert entry["metrics"]["intermediate/resumed_from_step"] == killed_at
