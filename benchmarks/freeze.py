"""What freezing buys: trainable parameters, optimizer-state size and step time vs freeze depth.

Builds the encoder + a classification head for each depth, wraps it in the DeepSpeed engine (the
same path as training), times optimizer steps on a fixed batch and prints ratios against depth 0 in
one table. ``python benchmarks/freeze.py [--model minilm] [--steps 10] [--batch 16] [--length 64]``.
On a GPU machine without Ray: ``python benchmarks/freeze.py --gpu``.
"""

from __future__ import annotations

import argparse
import time

import torch

from trainers import _loop, engine
from trainers._phase import build_model
from trainers.config import DeepSpeedConfig, PhaseConfig
from trainers.encoders import resolve_encoder
from trainers.modeling import HeadSpec, count_parameters, encoder_layers
from trainers.tasks import TaskType


def optimizer_state_bytes(eng: object) -> int:
    """Bytes held in optimizer state tensors (Adam moments) after some steps."""
    total = 0
    for state in eng.optimizer.state.values():  # type: ignore[attr-defined]
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def main() -> None:
    """Measure every depth and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--cache-dir", default="~/.cache/xstilts")
    args = parser.parse_args()
    device = torch.device("cuda" if args.gpu and torch.cuda.is_available() else "cpu")
    engine.init_distributed(device)
    path = resolve_encoder(args.model, args.cache_dir)
    head = HeadSpec("bench", TaskType.PAIR_CLASSIFICATION, 2)
    probe = build_model(path, [head], 0, 0)
    layers = len(encoder_layers(probe.encoder)[1])
    vocab = int(probe.encoder.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, vocab, (args.batch, args.length), generator=generator),
        "attention_mask": torch.ones(args.batch, args.length, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch,), generator=generator),
    }
    phase = PhaseConfig(learning_rate=1e-4, batch_size=args.batch, warmup_ratio=0.0)
    rows = []
    for depth in range(layers + 1):
        model = build_model(path, [head], depth, 0)
        trainable, total = count_parameters(model)
        eng = engine.build_engine(model, phase, DeepSpeedConfig(), args.steps + 2, device)
        moved = _loop.to_device(batch, device)
        _loop.train_step(eng, "bench", moved)  # warm-up (allocations, lazy state)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(args.steps):
            _loop.train_step(eng, "bench", moved)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step = (time.perf_counter() - start) / args.steps
        peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
        rows.append((depth, trainable, total, optimizer_state_bytes(eng), step, peak))
        del eng, model
    base = rows[0]
    print(f"{args.model} on {device.type}: {layers} layers, batch {args.batch} x {args.length} tokens")
    print(
        f"{'depth':>5}{'trainable':>12}{'/depth0':>9}{'opt state MB':>14}{'/depth0':>9}{'step s':>9}{'/depth0':>9}"
        + (f"{'peak MB':>10}{'/depth0':>9}" if device.type == "cuda" else "")
    )
    for depth, trainable, _total, state, step, peak in rows:
        line = (
            f"{depth:>5}{trainable:>12,}{trainable / base[1]:>9.2f}{state / 2**20:>14.1f}"
            f"{state / max(base[3], 1):>9.2f}{step:>9.3f}{step / base[4]:>9.2f}"
        )
        if device.type == "cuda":
            line += f"{peak / 2**20:>10.0f}{peak / max(base[5], 1):>9.2f}"
        print(line)


if __name__ == "__main__":
    main()
