"""The disk fills up while a phase writes a checkpoint: one error line, the previous checkpoint intact, the
rerun resumes from it.

The run's output directory is a small tmpfs (``mount`` needs root: skipped elsewhere). Once the phase has
checkpointed, the run is paused (SIGSTOP), the tmpfs is filled to the last byte, and the run continues
into its next checkpoint, which cannot be written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

EVERY = 5
TOTAL = 60
TIMEOUT_S = 300
DISK_MB = 64


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    """A ``DISK_MB`` tmpfs mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _latest_state(output_dir: Path) -> dict[str, Any] | None:
    try:
        pointer = (output_dir / "checkpoints" / "latest").read_text().strip()
        return dict(json.loads((Path(pointer) / "state.json").read_text()))
    except (OSError, ValueError):
        return None


def _fill(directory: Path) -> Path:
    """Write a file into ``directory`` until the filesystem has no byte left; return it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 512, 1):  # big steps, then the last bytes
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_fails_the_checkpoint_in_one_line_and_the_rerun_resumes(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        config = tiny_config(
            disk / "run", "pawsx", None, [f"target.checkpoint_every={EVERY}", f"target.max_steps={TOTAL}"]
        )
        config_path = tmp_path / "config.yaml"  # beside the disk, not on it
        config.save(config_path)
        output_dir = Path(config.output_dir)
        command = [sys.executable, "-m", "trainers", "--config", str(config_path)]
        process = subprocess.Popen(
            command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + TIMEOUT_S
        while _latest_state(output_dir) is None:
            assert process.poll() is None, process.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGSTOP)
        filler = _fill(disk)
        intact = _latest_state(output_dir)
        assert intact is not None and 0 < intact["step"] < TOTAL
        os.killpg(process.pid, signal.SIGCONT)
        _, err = process.communicate(timeout=TIMEOUT_S)
        stderr = err.decode(errors="replace")

        assert process.returncode == 1, stderr[-3000:]
        last = stderr.strip().splitlines()[-1]
        assert (
            last.startswith("error: target checkpoint at step ")
            and "the disk is full: 0 KiB free" in last
            and "the previous checkpoint is intact" in last
        )
        assert "Traceback" not in stderr, stderr[-3000:]
        assert _latest_state(output_dir) == intact  # the pointer still names the whole checkpoint
        failed_step = int(last.split("at step ")[1].split()[0])
        assert failed_step > intact["step"]
        assert not (output_dir / "checkpoints" / f"target-step{failed_step:07d}").exists()  # partial one gone

        filler.unlink()
        started = time.monotonic()
        rerun = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=TIMEOUT_S)
        print(
            f"{last}\nrerun: resumed from step {intact['step']}, finished in {time.monotonic() - started:.1f} s"
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        results = json.loads((output_dir / "results.json").read_text())
        assert results["target/resumed_from_step"] == intact["step"]
        assert results["target_step"] == TOTAL and results["finished"] == 1.0
        shutil.rmtree(output_dir, ignore_errors=True)
