"""Small pieces the training phases share: deterministic batch streams, mixture sampling, the step."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch


def batch_indices(
    num_examples: int, batch_size: int, seed: int, rank: int, world_size: int
) -> Iterator[list[int]]:
    """An endless stream of this rank's example indices, one list per step.

    Each epoch is a fresh seeded permutation; a global batch of ``batch_size * world_size`` is cut
    from it and this rank takes its slice. The stream depends only on its arguments, so a resumed
    phase can skip to step ``s`` and see the batches an uninterrupted one would have seen.
    """
    if num_examples == 0:
        raise ValueError("no training examples")
    global_batch = batch_size * world_size
    epoch = 0
    while True:
        order = list(range(num_examples))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        # Wrap around so every step has a full global batch even on tiny datasets.
        while len(order) < global_batch:
            order += order
        for start in range(0, len(order) - global_batch + 1, global_batch):
            chunk = order[start : start + global_batch]
            yield chunk[rank * batch_size : (rank + 1) * batch_size]
        epoch += 1


def mixture_weights(sizes: Sequence[int], sampling: str, temperature: float) -> list[float]:
    """Probability of drawing each task of a mixture: proportional to size, size**(1/T), or uniform."""
    if sampling == "uniform":
        raw = [1.0 for _ in sizes]
    elif sampling == "temperature":
        raw = [size ** (1.0 / temperature) for size in sizes]
    else:
        raw = [float(size) for size in sizes]
    total = sum(raw)
    return [value / total for value in raw]


def task_schedule(weights: Sequence[float], steps: int, seed: int) -> list[int]:
    """Which mixture task each step trains on; identical on every rank (same seed)."""
    rng = random.Random(seed)
    return rng.choices(range(len(weights)), weights=weights, k=steps)


def steps_for(
    num_examples: int, batch_size: int, world_size: int, epochs: float, max_steps: int | None
) -> int:
    """Optimizer steps of a phase: ``max_steps``, or ``epochs`` passes over the data."""
    if max_steps is not None:
        return max_steps
    per_epoch = max(1, num_examples // (batch_size * world_size))
    return max(1, round(per_epoch * epochs))


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move the tensors of a collated batch to ``device``."""
    return {
        key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()
    }


class StepClock:
    """When this process's job took its first and its latest optimizer step (wall clock), for start-up costs."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def reset(self) -> None:
        """Forget the previous job's steps (a process may run several: a reused trial actor)."""
        self.first = self.last = None

    def tick(self) -> None:
        """One step ended now."""
        self.last = time.time()
        if self.first is None:
            self.first = self.last


STEPS = StepClock()
"""This process's step clock (``train_step`` ticks it, ``worker.run_plan`` resets and reports it)."""


def train_step(engine: Any, task: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Forward, backward and (at accumulation boundaries) an optimizer step; returns the loss.

    The loss stays a tensor on the device: reading it (``float``) waits for the device to finish the
    step, so the loops read it only when they show, report or checkpoint, not at every step.
    """
    engine.train()
    loss, _ = engine(task, batch)
    engine.backward(loss)
    engine.step()
    STEPS.tick()
    return loss.detach()


def wait_for_device(device: torch.device) -> None:
    """Block until ``device`` has run every queued step (steps are timed on the host; the device runs behind)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
