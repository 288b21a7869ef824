"""Setup that both training phases share: model building, engine, checkpoint cadence, encoder saving."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from trainers import engine as engines
from trainers.config import PhaseConfig, TransferConfig
from trainers.encoders import load_encoder
from trainers.errors import UserError
from trainers.modeling import (
    HeadSpec,
    TransferModel,
    checkpoint_activations,
    count_parameters,
    freeze_bottom,
)
from trainers.progress import stage
from trainers.runtime import Runtime

LOW_DISK_BYTES = 64 << 20
"""Below this much free space, a failed checkpoint write is reported as a full disk."""


class CheckpointWriteError(UserError):
    """A checkpoint that could not be written (a full disk): one line, the previous checkpoint intact."""


def build_model(
    encoder_dir: str,
    heads: list[HeadSpec],
    freeze_depth: int,
    seed: int,
    gradient_checkpointing: bool = False,
    engine_config: dict[str, Any] | None = None,
) -> TransferModel:
    """Load the encoder (a T5-family checkpoint: its encoder stack alone), add fresh heads (seeded), freeze
    the bottom ``freeze_depth`` layers, and checkpoint the layers' activations if asked.

    ``engine_config``: the DeepSpeed config the model will train under (``engine_config`` below). The weights
    load in its precision, and under ZeRO-3 partitioned from the start (``engines.partitioned_loading``);
    the heads, made after, are plain parameters in the same type, which the engine partitions in turn.
    None: the checkpoint's own type, whole (benchmarks, tests).
    """
    dtype = None if engine_config is None else engines.weights_dtype(engine_config)
    partitioning = (
        engines.partitioned_loading(engine_config)
        if engine_config is not None and engines.partitions_weights(engine_config)
        else contextlib.nullcontext()
    )
    # A hub id is downloaded on first use (minutes for a large encoder): say so rather than stay silent.
    loading = (
        contextlib.nullcontext() if Path(encoder_dir).is_dir() else stage(f"loading encoder {encoder_dir}")
    )
    with loading, partitioning:
        encoder = load_encoder(encoder_dir, dtype)
    if hasattr(encoder, "pooler"):
        encoder.pooler = None  # heads read token states; an unused pooler would get no gradient
    torch.manual_seed(seed)
    model = TransferModel(encoder, heads)
    if dtype is not None:
        model.heads.to(dtype)  # a zero.Init model DeepSpeed casts none of: the heads must match already
    freeze_bottom(model.encoder, freeze_depth)
    if gradient_checkpointing:
        checkpoint_activations(model.encoder)
    return model


def engine_config(
    runtime: Runtime, phase: PhaseConfig, config: TransferConfig, total_steps: int
) -> dict[str, Any]:
    """The DeepSpeed config ``start_engine`` will give the phase's engine (for ``build_model``)."""
    return engines.deepspeed_config(phase, config.deepspeed, total_steps, runtime.world_size, runtime.device)


def start_engine(
    runtime: Runtime, model: TransferModel, phase: PhaseConfig, config: TransferConfig, total_steps: int
) -> tuple[Any, dict[str, int]]:
    """The DeepSpeed engine for a phase, and its parameter counts."""
    trainable, total = count_parameters(model)
    engine = engines.build_engine(model, phase, config.deepspeed, total_steps, runtime.device)
    return engine, {"trainable_params": trainable, "total_params": total}


def maybe_resume(engine: Any, checkpoint: Path | None, phase_name: str) -> int:
    """The step to start from: that of ``checkpoint`` when it belongs to this phase, else 0."""
    if checkpoint is None:
        return 0
    state = engines.load_checkpoint(engine, checkpoint)
    if state.get("phase") != phase_name:
        return 0
    return int(state["step"])


def checkpoint(
    runtime: Runtime, engine: Any, phase_name: str, step: int, config: TransferConfig, metrics: dict[str, Any]
) -> None:
    """Save a resumable checkpoint (with the resolved config beside it) and report it with ``metrics``."""
    directory = runtime.scratch_dir() / f"{phase_name}-step{step:07d}"
    try:
        engines.save_checkpoint(engine, directory, {"phase": phase_name, "step": step})
        if runtime.rank == 0:
            config.save(directory / "config.yaml")
    except (OSError, RuntimeError) as error:  # torch's zip writer reports a full disk as a RuntimeError
        # Nothing points at the partial directory yet (the latest checkpoint is reported below, after a
        # whole save): drop it, so that it takes no space and is never resumed from.
        shutil.rmtree(directory, ignore_errors=True)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        free = shutil.disk_usage(directory.parent).free
        if free < LOW_DISK_BYTES:  # torch's message does not say why; the free space does
            reason = f"the disk is full: {free // 1024} KiB free; {reason}"
        raise CheckpointWriteError(
            f"{phase_name} checkpoint at step {step} could not be written to {directory.parent} ({reason}); "
            "the previous checkpoint is intact: free space and rerun to resume from it"
        ) from error
    torch.distributed.barrier()
    runtime.report(metrics, checkpoint_dir=directory)


def due(step: int, every: int | None, total: int) -> bool:
    """Whether a periodic action (eval, checkpoint) falls on ``step`` (never on the last: that has its own)."""
    return every is not None and step % every == 0 and step < total


def save_encoder(
    runtime: Runtime, engine: Any, tokenizer: Any, directory: Path, config: TransferConfig
) -> None:
    """Write the encoder alone (heads dropped), its tokenizer and the resolved config to ``directory``."""
    state = engines.full_state_dict(engine)  # collective under ZeRO-3: every rank calls it
    if runtime.rank == 0:
        prefix = "encoder."
        encoder_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        directory.mkdir(parents=True, exist_ok=True)
        engine.module.encoder.save_pretrained(directory, state_dict=encoder_state)
        tokenizer.save_pretrained(directory)
        config.save(directory / "config.yaml")
    torch.distributed.barrier()


class Timer:
    """Wall time: since creation, or (``stopped()``) accumulated inside ``with timer:`` blocks."""

    def __init__(self, running: bool = True) -> None:
        self.total = 0.0
        self.start: float | None = time.perf_counter() if running else None

    @classmethod
    def stopped(cls) -> Timer:
        """A timer that counts only inside ``with`` blocks."""
        return cls(running=False)

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.start is not None
        self.total += time.perf_counter() - self.start
        self.start = None

    def seconds(self) -> float:
        """Seconds counted so far."""
        running = time.perf_counter() - self.start if self.start is not None else 0.0
        return self.total + running
