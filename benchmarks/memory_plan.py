"""The memory plan (trainers/memory.py) against what an encoder really holds on CPU.

For random-init encoders of the plan's shapes (tiny, MiniLM-L6), one training step in fp32: the tensors the
forward pass saves for backward (autograd's saved-tensor hooks, parameters excluded, each storage once)
and the parameters, gradients and AdamW state after the step, next to the plan's figures.

    python benchmarks/memory_plan.py
"""

from __future__ import annotations

import torch
from transformers import XLMRobertaModel

from trainers.config import TransferConfig
from trainers.encoders import shape_config
from trainers.memory import ENCODER_SHAPES, memory_plan
from trainers.modeling import freeze_bottom
from trainers.peak_memory import one_step_bytes

MIB = 1024**2


def measure(encoder: str, batch: int, seq: int, freeze_depth: int) -> tuple[float, float]:
    """(saved activations, parameters + gradients + AdamW state) in bytes after one fp32 step on CPU."""
    shape = ENCODER_SHAPES[encoder]
    torch.manual_seed(0)
    model = XLMRobertaModel(
        shape_config(shape),
        add_pooling_layer=False,
    )
    freeze_bottom(model, freeze_depth)
    activations, static = one_step_bytes(model, shape.vocab, batch, seq)
    return float(activations), float(static)


def main() -> None:
    """Print the plan next to the measurement for a few shapes, batches and freeze depths."""
    print(
        "| encoder | batch x seq | freeze_depth | activations plan MiB | measured MiB | plan / measured "
        "| params+grads+AdamW plan MiB | measured MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for encoder, batch, seq, depths in (("tiny", 16, 64, (0, 1)), ("minilm", 8, 128, (0, 3))):
        for depth in depths:
            config = TransferConfig.from_dict(
                {
                    "model": {"name_or_path": encoder, "max_seq_length": seq, "doc_stride": seq // 2},
                    "target": {"task": "udpos", "batch_size": batch, "freeze_depth": depth},
                }
            )
            plan = memory_plan(config, config.target, ["udpos"], device="cpu")
            assert plan is not None
            activations, static = measure(encoder, batch, seq, depth)
            planned_static = plan.parameters + plan.gradients + plan.optimizer
            print(
                f"| {encoder} | {batch} x {seq} | {depth} | {plan.activations / MIB:.2f} | {activations / MIB:.2f} "
                f"| {plan.activations / activations:.3f} | {planned_static / MIB:.2f} | {static / MIB:.2f} |"
            )


if __name__ == "__main__":
    main()
