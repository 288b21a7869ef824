"""No start-up wait is endless: a dead build's lock is cleared or never touched, and live waits end in one line.

A trial killed during start-up leaves torch's extension-build lock behind (``<build dir>/lock``); torch
waits on such a file forever. These tests leave one as a killed process would and check that a run
still completes, that the op-build lock xstilts takes is released by the kernel when its holder dies and
bounded while its holder lives, and that a process-group rendezvous that cannot complete fails within
``scaling.timeout_s`` with one line naming it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trainers.deepspeed_ops import SHM_COMM_OP, TORCH_LOCK, StartupError, build_directory, build_lock

RUN_LIMIT_S = 300


def _config_file(tiny_config: Any, tmp_path: Path, overrides: list[str] | None = None) -> Path:
    config = tiny_config(
        tmp_path / "run", "udpos", None, ["evaluation.languages=[en,de]", *(overrides or [])]
    )
    path = tmp_path / "config.yaml"
    config.save(path)
    return path


@pytest.mark.slow  # a whole `python -m trainers` process: end to end
def test_a_stale_shm_op_lock_does_not_hang_a_run(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    extensions = tmp_path / "torch_extensions"
    (extensions / SHM_COMM_OP).mkdir(parents=True)
    (extensions / SHM_COMM_OP / TORCH_LOCK).touch()  # what a worker killed mid-build leaves
    env = {**child_env, "TORCH_EXTENSIONS_DIR": str(extensions)}
    command = [sys.executable, "-m", "trainers", "--config", str(_config_file(tiny_config, tmp_path))]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_LIMIT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["finished"] == 1.0 and "zero_shot/de" in results
    # The op was never built: its build directory holds only the stale lock.
    assert [p.name for p in (extensions / SHM_COMM_OP).iterdir()] == [TORCH_LOCK]


@pytest.mark.slow
@pytest.mark.soak  # compiles DeepSpeed's CPU Adam op from scratch: over a minute
def test_a_stale_lock_of_an_op_xstilts_builds_is_cleared_and_the_run_completes(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    """Optimizer offload needs DeepSpeed's CPU Adam op: built here (a minute or more), past a dead build's lock."""
    extensions = tmp_path / "torch_extensions"
    (extensions / "cpu_adam").mkdir(parents=True)
    (extensions / "cpu_adam" / TORCH_LOCK).touch()
    env = {**child_env, "TORCH_EXTENSIONS_DIR": str(extensions)}
    offload = ["deepspeed.zero_stage=1", "deepspeed.offload_optimizer=true"]
    command = [
        sys.executable,
        "-m",
        "trainers",
        "--config",
        str(_config_file(tiny_config, tmp_path, offload)),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["finished"] == 1.0
    built = {p.name for p in (extensions / "cpu_adam").iterdir()}
    assert TORCH_LOCK not in built and any(name.endswith(".so") for name in built)


@pytest.mark.slow  # a whole `python -m trainers` process: end to end
def test_a_rendezvous_that_cannot_complete_fails_in_one_line_within_its_bound(
    tiny_config: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Rank 0 of a 2-rank group whose rank 1 never comes, as when a peer was killed.
    env = {**child_env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2")
    config = _config_file(tiny_config, tmp_path, ["scaling.timeout_s=5"])
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "trainers", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
    )
    waited = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: process-group rendezvous at 127.0.0.1:") and "within 5s" in last, last
    assert "Traceback" not in result.stderr
    assert waited < 120  # the 5 s bound plus start-up, not torch's 30-minute default


def _hold_build_lock(extensions: Path, name: str, hold_s: float) -> subprocess.Popen[str]:
    """A process that takes ``build_lock(name)`` and keeps it ``hold_s`` seconds (prints HELD once it has it)."""
    code = (
        "import sys, time\n"
        "from trainers.deepspeed_ops import build_lock\n"
        f"with build_lock({name!r}, timeout_s=5):\n"
        "    print('HELD', flush=True)\n"
        f"    time.sleep({hold_s})\n"
    )
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions)}
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "HELD"
    return process


def test_the_build_lock_is_released_when_its_holder_is_killed_and_clears_the_torch_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    holder = _hold_build_lock(tmp_path, "some_op", hold_s=600)
    directory = build_directory("some_op")
    (directory / TORCH_LOCK).touch()  # the holder "was building" when it died
    holder.kill()
    holder.wait(timeout=30)
    started = time.monotonic()
    with build_lock("some_op", timeout_s=5):
        assert not (directory / TORCH_LOCK).exists()
    assert time.monotonic() - started < 2


def test_a_live_build_lock_is_waited_for_within_the_bound_then_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    holder = _hold_build_lock(tmp_path, "some_op", hold_s=600)
    try:
        started = time.monotonic()
        with pytest.raises(StartupError) as raised, build_lock("some_op", timeout_s=1.5):
            pass
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait(timeout=30)
    message = str(raised.value)
    assert "\n" not in message and "some_op.xstilts.lock" in message and f"pid {holder.pid}" in message
    assert 1.5 <= waited < 5


def test_a_one_rank_process_makes_its_own_group_whatever_port_it_inherited() -> None:
    """A process that is not one rank of several (a plain run, a Tune trial training in its own actor) gets
    a working group even when it inherited a parent's ``MASTER_PORT`` that the parent's store still holds,
    and again after a library destroyed its group (a benchmark, a notebook running several plans)."""
    script = (
        "import os, torch\n"
        "from torch.distributed import TCPStore\n"
        "from trainers.engine import init_distributed\n"
        "held = TCPStore('127.0.0.1', 0, 1, True)  # the parent's store, still listening\n"
        "os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(held.port), RANK='0', WORLD_SIZE='1')\n"
        "init_distributed(torch.device('cpu'), 60)\n"
        "torch.distributed.barrier()\n"
        "torch.distributed.destroy_process_group()\n"
        "init_distributed(torch.device('cpu'), 60)\n"
        "torch.distributed.barrier()\n"
        "print('GROUPS', torch.distributed.get_world_size())\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("GROUPS", 1)[1].split() == ["1"]


def test_a_worker_imports_deepspeed_without_mlflow_and_can_still_import_mlflow() -> None:
    """DeepSpeed's autotuner tries ``import mlflow`` (1.3 s a worker): skipped, and MLflow stays importable."""
    code = (
        "import sys\n"
        "from trainers.deepspeed_ops import import_deepspeed\n"
        "deepspeed = import_deepspeed()\n"
        "import deepspeed.autotuning.autotuner as autotuner\n"
        "print('RESULT', 'mlflow' in sys.modules, autotuner.has_mlflow, import_deepspeed() is deepspeed)\n"
        "import mlflow\n"
        "print('RESULT', mlflow.MlflowClient.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines == [["False", "False", "True"], ["MlflowClient"]], done.stdout


def test_the_worker_and_the_driver_import_only_what_they_use() -> None:
    """A worker imports the scoring libraries only when a metric of its tasks is computed; the search driver
    never imports the trainer stack (torch), which its Train jobs' workers import."""
    code = (
        "import sys\n"
        "import trainers.worker\n"
        "print('RESULT', *(name in sys.modules for name in ('torchmetrics', 'seqeval', 'sklearn')))\n"
        "from trainers.metrics import get_metric\n"
        "get_metric('seqeval_f1').compute([['B-PER', 'O']], [['B-PER', 'O']])\n"
        "print('RESULT', *(name in sys.modules for name in ('torchmetrics', 'seqeval')))\n"
    )
    driver = "import sys\nimport search.tuner\nprint('RESULT', 'torch' in sys.modules)\n"
    found = []
    for source in (code, driver):
        done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        found += [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert found == [["False", "False", "False"], ["False", "True"], ["False"]]
