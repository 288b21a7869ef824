"""Where a per-worker function is running: under Ray Train, in a Ray Tune trial, under torchrun, or alone.

The phases talk to a ``Runtime`` only: its rank, its device, ``report`` (metrics and, optionally, a
checkpoint directory) and ``latest_checkpoint`` (for resume). Ray is imported only when running
under Ray Train, so the same code runs on machines without Ray.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from trainers._atomic import write_text_atomic
from trainers.keys import COST_GPU_S


class Runtime(Protocol):
    """What a phase needs from the process it runs in."""

    rank: int
    world_size: int
    device: torch.device

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """Send metrics (all ranks call it; rank 0's metrics are the ones kept) and a checkpoint."""

    def latest_checkpoint(self) -> Path | None:
        """The directory of the newest checkpoint of this job, to resume from."""

    def scratch_dir(self) -> Path:
        """A local directory for this worker's temporary files."""


def _device(use_gpu: bool) -> torch.device:
    if use_gpu and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _numeric(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}


def _scratch() -> Path:
    """This process's directory under TMPDIR (checkpoints are written there before they are reported)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"xstilts-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _restored(checkpoint: Any, scratch: Path) -> Path | None:
    """A Ray checkpoint (Train's or Tune's) downloaded to ``<scratch>/restored``; None when there is none."""
    if checkpoint is None:
        return None
    target = scratch / "restored"
    shutil.rmtree(target, ignore_errors=True)
    return Path(checkpoint.to_directory(str(target)))


@dataclass
class LocalRuntime:
    """A plain process (or a torchrun rank): metrics go to ``metrics.jsonl``, checkpoints stay in place."""

    output_dir: Path
    """The run's output directory."""
    use_gpu: bool = False
    """Use ``cuda:LOCAL_RANK`` when available."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (oldest removed first)."""
    rank: int = field(init=False)
    world_size: int = field(init=False)
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.device = _device(self.use_gpu)
        self.output_dir.mkdir(parents=True, exist_ok=True)

    @property
    def _pointer(self) -> Path:
        return self.output_dir / "checkpoints" / "latest"

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """Append rank 0's metrics as a JSON line; record ``checkpoint_dir`` as the latest checkpoint."""
        if self.rank != 0:
            return
        with (self.output_dir / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps({"time": time.time(), **_numeric(metrics)}) + "\n")
        if checkpoint_dir is not None:
            previous = self.latest_checkpoint()
            # Atomic: a crash leaves the old or the new pointer.
            write_text_atomic(self._pointer, str(checkpoint_dir.resolve()))
            self._prune(keep={checkpoint_dir.resolve(), *([previous] if previous else [])})

    def _prune(self, keep: set[Path]) -> None:
        root = self.output_dir / "checkpoints"
        candidates = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        excess = len(candidates) - self.keep_checkpoints
        for path in candidates:
            if excess <= 0:
                break
            if path.resolve() not in keep:
                shutil.rmtree(path, ignore_errors=True)
                excess -= 1

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint named by ``checkpoints/latest``, if it still exists."""
        if not self._pointer.is_file():
            return None
        path = Path(self._pointer.read_text().strip())
        return path if (path / "state.json").is_file() else None

    def scratch_dir(self) -> Path:
        """``<output_dir>/checkpoints`` (checkpoints are written where they are kept)."""
        path = self.output_dir / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class RayTrainRuntime:
    """A Ray Train worker: ``ray.train.report`` carries metrics and checkpoints to storage (and Tune)."""

    use_gpu: bool = False
    """Whether the job's workers have GPUs."""
    rank: int = field(init=False)
    world_size: int = field(init=False)
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device() if self.use_gpu else torch.device("cpu")

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """``ray.train.report``; the checkpoint's files from every rank are merged in storage.

        Each report also carries ``node_id``, the Ray node this worker runs on (Tune's own ``node_ip``
        is the trial driver's, which may be another node), so a trial's results say where it trained.
        """
        import ray
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        node_id = ray.get_runtime_context().get_node_id()
        ray.train.report({**_numeric(metrics), "node_id": node_id}, checkpoint=checkpoint)
        if checkpoint_dir is not None:
            # Uploaded to storage by now (synchronous upload): the local copy is no longer needed.
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    def latest_checkpoint(self) -> Path | None:
        """The latest reported checkpoint, downloaded to a local directory."""
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        return _restored(checkpoint, self.scratch_dir())

    def scratch_dir(self) -> Path:
        """A per-process directory under TMPDIR."""
        return _scratch()


@dataclass
class TuneRuntime:
    """A Ray Tune trial's own process, running a one-worker plan itself (no Ray Train worker group).

    ``ray.tune.report`` carries metrics and checkpoints to the trial's storage; a retried or resumed
    trial gets its latest checkpoint back from ``ray.tune.get_checkpoint``. The process group is this
    process alone (``engine.init_distributed`` makes it), and it outlives the trial when Tune reuses the
    actor for the next one, so that trial pays neither the imports nor the process-group start again.
    """

    use_gpu: bool = False
    """Whether the trial holds a GPU (Ray sets ``CUDA_VISIBLE_DEVICES`` to it)."""
    rank: int = field(init=False)
    world_size: int = field(init=False)
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        self.rank, self.world_size = 0, 1
        self.device = (
            torch.device("cuda", 0) if self.use_gpu and torch.cuda.is_available() else torch.device("cpu")
        )

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """``ray.tune.report``, with ``node_id`` (where the trial trained) as ``RayTrainRuntime`` adds it."""
        import ray
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        node_id = ray.get_runtime_context().get_node_id()
        tune.report({**_numeric(metrics), "node_id": node_id}, checkpoint=checkpoint)
        if checkpoint_dir is not None:
            # Persisted to the trial's storage by now (the report uploads it): the local copy can go.
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    def latest_checkpoint(self) -> Path | None:
        """The trial's latest reported checkpoint (after a retry or a resume), in a local directory."""
        from ray import tune

        checkpoint = tune.get_checkpoint()
        return _restored(checkpoint, self.scratch_dir())

    def scratch_dir(self) -> Path:
        """A per-process directory under TMPDIR."""
        return _scratch()


@dataclass
class MeteredRuntime:
    """Another runtime, with the device-seconds its job has held so far added to every report.

    A trial holds its workers from launch to its end, so what it costs is its wall time times its
    workers, whatever it spent the time on (start-up, training, evaluation, waiting on a barrier).
    """

    inner: Runtime
    """The runtime the phases report through."""
    launched_at: float
    """When the job was launched (wall clock), the start of what it is charged for."""
    rank: int = field(init=False)
    world_size: int = field(init=False)
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        self.rank, self.world_size, self.device = self.inner.rank, self.inner.world_size, self.inner.device

    def device_seconds(self) -> float:
        """Wall time since launch x workers."""
        return (time.time() - self.launched_at) * self.world_size

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """The inner report, with ``cost/gpu_s`` added."""
        self.inner.report({**metrics, COST_GPU_S: self.device_seconds()}, checkpoint_dir)

    def latest_checkpoint(self) -> Path | None:
        """The inner runtime's."""
        return self.inner.latest_checkpoint()

    def scratch_dir(self) -> Path:
        """The inner runtime's."""
        return self.inner.scratch_dir()
