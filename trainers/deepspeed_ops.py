"""DeepSpeed's JIT-built C++ ops: which ones a worker builds, under a lock that never waits forever.

DeepSpeed JIT-builds its CPU ops with torch's ``cpp_extension``, behind torch's lock file
``<build dir>/lock`` (``torch.utils.file_baton.FileBaton``). That file names no owner, so a process
killed while it holds it (a trial stopped during start-up, a preempted node) leaves it behind, and
every later build of that op waits on it forever. Two defences:

- The shared-memory all-reduce op (``deepspeed_shm_comm``), which DeepSpeed builds at every
  process-group start on CPU, serves only DeepSpeed's inference all-reduce, which xstilts never calls:
  it is not built at all (``skip_unused_ops``), which also saves its build time on a fresh machine.
- An op xstilts does need (CPU Adam for ``deepspeed.offload_optimizer``) is built by ``load_op`` before
  DeepSpeed asks for it, under an ``flock`` that the kernel releases when its holder dies. Every
  xstilts worker builds only while holding that flock, so a torch lock file found while holding it
  was left by a dead build and is removed. Waiting for the flock is bounded (``scaling.timeout_s``)
  and ends in a ``StartupError`` naming the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

SHM_COMM_OP = "deepspeed_shm_comm"
"""DeepSpeed's name of its CPU shared-memory communication op (``ShareMemCommBuilder.NAME``)."""
TORCH_LOCK = "lock"
"""The file torch's ``cpp_extension`` holds in an op's build directory while it builds or loads it."""


class StartupError(RuntimeError):
    """A worker's start-up step did not finish within its bound (the message names what it waited for)."""


def import_deepspeed() -> ModuleType:
    """``import deepspeed``, without the optional MLflow import of its autotuner (which xstilts never runs).

    DeepSpeed imports its autotuner at package import, and the autotuner tries ``import mlflow`` to log
    its experiments there: 1.3 s of every worker's start-up, for a module no worker uses (the driver
    logs to MLflow). While DeepSpeed is imported, ``mlflow`` is marked missing in ``sys.modules`` (the
    autotuner then records ``has_mlflow = False``); the mark is removed at once, so a later
    ``import mlflow`` in this process works as usual. A process that already imported MLflow keeps it.
    """
    if "deepspeed" in sys.modules:
        return sys.modules["deepspeed"]
    hide = "mlflow" not in sys.modules
    if hide:
        sys.modules["mlflow"] = None  # type: ignore[assignment]  # "import mlflow" raises ImportError
    try:
        import deepspeed
    finally:
        if hide and sys.modules.get("mlflow", 0) is None:
            del sys.modules["mlflow"]
    return deepspeed


def skip_unused_ops() -> None:
    """Tell DeepSpeed not to build the shared-memory all-reduce op: xstilts never uses it."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().create_op_builder("ShareMemCommBuilder") is None:
        return  # GPU accelerators have no such op; probing every op's compatibility would cost seconds
    # DeepSpeed's comm backend builds the op only if this probe result (cached in the module, and
    # documented there as editable) marks it compatible.
    deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False


def build_directory(name: str) -> Path:
    """Where torch's ``cpp_extension`` builds op ``name`` (``$TORCH_EXTENSIONS_DIR/<name>`` by default)."""
    from torch.utils import cpp_extension

    # The same function torch's load() uses, so the directory is the one its lock file lives in.
    return Path(cpp_extension._get_build_directory(name, verbose=False))


@contextlib.contextmanager
def build_lock(name: str, timeout_s: float, poll_s: float = 0.2) -> Iterator[Path]:
    """Hold the flock of op ``name``'s build, waiting at most ``timeout_s``; clear a dead build's torch lock."""
    directory = build_directory(name)
    guard = directory.parent / f"{name}.xstilts.lock"
    fd = os.open(guard, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = guard.read_text().strip() or "an unknown process"
                    raise StartupError(
                        f"timed out after {timeout_s:.0f}s waiting for the build lock {guard} of DeepSpeed op "
                        f"{name}, held by {holder} (scaling.timeout_s)"
                    ) from None
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.uname().nodename} pid {os.getpid()}\n".encode(), 0)
        # Every xstilts build holds the flock, so a torch lock file here belongs to a dead process.
        with contextlib.suppress(FileNotFoundError):
            (directory / TORCH_LOCK).unlink()
        yield guard
    finally:
        os.close(fd)  # releases the flock (the kernel does the same if this process dies)


def load_op(builder: Any, timeout_s: float) -> Any:
    """``builder.load()`` (JIT-building the op if needed) under ``build_lock``; DeepSpeed reuses the result."""
    with build_lock(builder.name, timeout_s):
        return builder.load(verbose=False)


def prepare_ops(offload_optimizer: bool, timeout_s: float) -> None:
    """Build, before DeepSpeed asks for them, the ops a phase's engine will load."""
    if not offload_optimizer:
        return  # torch's AdamW: no op to build
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("CPUAdamBuilder")
    if builder is not None:
        load_op(builder, timeout_s)
