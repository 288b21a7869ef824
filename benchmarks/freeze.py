"""What freezing buys: trainable parameters, optimizer-state size and step time vs freeze depth.

Builds the encoder + a classification head for each depth, wraps it in the DeepSpeed engine (the
same path as training), times optimizer steps on a fixed batch and prints ratios against depth 0 in
one table. ``python benchmarks/freeze.py [--model minilm] [--steps 10] [--batch 16] [--length 64]
[--depths all|quarters]``. On a GPU machine without Ray: ``python benchmarks/freeze.py --gpu`` (adds each
depth's peak GPU memory); ``benchmarks/gpu_check.py`` runs this table too, with the memory plan beside it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import torch

from trainers import _loop, engine
from trainers._phase import build_model
from trainers.config import DeepSpeedConfig, PhaseConfig
from trainers.encoders import resolve_encoder
from trainers.modeling import HeadSpec, TransferModel, count_parameters, encoder_layers
from trainers.tasks import TaskType

HEAD = HeadSpec("bench", TaskType.PAIR_CLASSIFICATION, 2)
"""The head every depth trains: sentence-pair classification, as XNLI and PAWS-X."""


@dataclass(frozen=True)
class DepthRow:
    """One freeze depth's measurements."""

    depth: int
    trainable: int
    """Trainable parameters (head included)."""
    total: int
    optimizer_bytes: int
    """Bytes of optimizer-state tensors on this rank after the steps."""
    step_s: float
    """Mean seconds per optimizer step (after one warm-up step)."""
    peak_bytes: int | None
    """``torch.cuda.max_memory_allocated`` over the timed steps (None on CPU)."""


def optimizer_state_bytes(eng: object) -> int:
    """Bytes held in optimizer state tensors (Adam moments) after some steps."""
    total = 0
    for state in eng.optimizer.state.values():  # type: ignore[attr-defined]
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def vocabulary(model: TransferModel) -> int:
    """Tokens ``model``'s encoder embeds."""
    config: Any = model.encoder.config
    return int(config.vocab_size)


def encoder_size(path: str) -> tuple[int, int]:
    """(layers, vocabulary) of the encoder at ``path``."""
    probe = build_model(path, [HEAD], 0, 0)
    return len(encoder_layers(probe.encoder)[1]), vocabulary(probe)


def depths_of(layers: int, which: str) -> list[int]:
    """``all``: 0..layers; ``quarters``: 0, L/4, L/2, 3L/4 and L (rounded down, without repeats)."""
    if which == "all":
        return list(range(layers + 1))
    return sorted({layers * quarter // 4 for quarter in range(5)})


def fixed_batch(vocab: int, batch: int, length: int) -> dict[str, torch.Tensor]:
    """A seeded random batch of ``batch`` pairs of ``length`` tokens with binary labels."""
    generator = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(5, vocab, (batch, length), generator=generator),
        "attention_mask": torch.ones(batch, length, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch,), generator=generator),
    }


def measure_depth(
    path: str,
    depth: int,
    batch: dict[str, torch.Tensor],
    steps: int,
    device: torch.device,
    ds: DeepSpeedConfig | None = None,
) -> DepthRow:
    """Build the model frozen at ``depth`` on the training path (``build_model`` + ``build_engine``, ZeRO
    settings ``ds``), take one warm-up step, then time ``steps`` steps on ``batch``."""
    ds = ds or DeepSpeedConfig()
    phase = PhaseConfig(learning_rate=1e-4, batch_size=len(batch["labels"]), warmup_ratio=0.0)
    config = engine.deepspeed_config(phase, ds, steps + 2, torch.distributed.get_world_size(), device)
    model = build_model(path, [HEAD], depth, 0, engine_config=config)
    trainable, total = count_parameters(model)
    eng = engine.build_engine(model, phase, ds, steps + 2, device)
    moved = _loop.to_device(batch, device)
    _loop.train_step(eng, HEAD.task, moved)  # warm-up (allocations, lazy state)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        _loop.train_step(eng, HEAD.task, moved)
    _loop.wait_for_device(device)
    step = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    row = DepthRow(depth, trainable, total, optimizer_state_bytes(eng), step, peak)
    del eng, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def table(rows: list[DepthRow], plans: dict[int, float] | None = None) -> list[str]:
    """The table's lines: ratios against the first row (depth 0); ``plans``: the memory plan's bytes by depth."""
    base = rows[0]
    peaks = any(row.peak_bytes is not None for row in rows)
    header = f"{'depth':>5}{'trainable':>12}{'/depth0':>9}{'opt state MB':>14}{'/depth0':>9}{'step s':>9}{'/depth0':>9}"
    if peaks:
        header += f"{'peak MB':>10}{'/depth0':>9}"
    if plans:
        header += f"{'plan MB':>10}{'plan/peak':>11}"
    lines = [header]
    for row in rows:
        line = (
            f"{row.depth:>5}{row.trainable:>12,}{row.trainable / base.trainable:>9.2f}"
            f"{row.optimizer_bytes / 2**20:>14.1f}{row.optimizer_bytes / max(base.optimizer_bytes, 1):>9.2f}"
            f"{row.step_s:>9.3f}{row.step_s / base.step_s:>9.2f}"
        )
        if peaks:
            peak = row.peak_bytes or 0
            line += f"{peak / 2**20:>10.0f}{peak / max(base.peak_bytes or 0, 1):>9.2f}"
        if plans:
            plan = plans.get(row.depth)
            line += f"{plan / 2**20:>10.0f}" if plan is not None else f"{'n/a':>10}"
            line += (
                f"{plan / row.peak_bytes:>11.2f}" if plan is not None and row.peak_bytes else f"{'n/a':>11}"
            )
        lines.append(line)
    return lines


def main() -> None:
    """Measure every depth and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--depths", choices=("all", "quarters"), default="all")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--cache-dir", default="~/.cache/xstilts")
    args = parser.parse_args()
    device = torch.device("cuda" if args.gpu and torch.cuda.is_available() else "cpu")
    engine.init_distributed(device)
    path = resolve_encoder(args.model, args.cache_dir)
    layers, vocab = encoder_size(path)
    batch = fixed_batch(vocab, args.batch, args.length)
    rows = [measure_depth(path, depth, batch, args.steps, device) for depth in depths_of(layers, args.depths)]
    print(f"{args.model} on {device.type}: {layers} layers, batch {args.batch} x {args.length} tokens")
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
