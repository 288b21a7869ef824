"""The DeepSpeed engine each training phase runs on: config, initialisation, checkpoints.

Only trainable parameters reach the optimizer, so frozen layers get no gradients and no
optimizer state. The optimizer and the linear warm-up/decay schedule are DeepSpeed's own (built from
its config), so ZeRO stages 0-3 and CPU offload all take the same path, on GPU (bf16) and CPU (fp32).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.config import DeepSpeedConfig, PhaseConfig
from trainers.deepspeed_ops import StartupError, import_deepspeed, skip_unused_ops

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "layernorm.weight")


def precision(ds: DeepSpeedConfig, device: torch.device) -> str:
    """The precision actually used: ``auto`` is bf16 on GPU and fp32 on CPU."""
    if ds.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return ds.precision


def deepspeed_config(
    phase: PhaseConfig, ds: DeepSpeedConfig, total_steps: int, world_size: int, device: torch.device
) -> dict[str, Any]:
    """The DeepSpeed JSON config for one phase."""
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": device.type == "cuda"}
    if ds.offload_param:
        zero["offload_param"] = {"device": "cpu", "pin_memory": device.type == "cuda"}
    dtype = precision(ds, device)
    # DeepSpeed rejects warmup_num_steps=0 (warmup_ratio 0, or short phases) and warms up over at least
    # 2 steps whatever it is given, so 1 is the floor that keeps such phases running.
    warmup = max(1, int(phase.warmup_ratio * total_steps))
    return {
        "train_micro_batch_size_per_gpu": phase.batch_size,
        "gradient_accumulation_steps": ds.gradient_accumulation_steps,
        "train_batch_size": phase.batch_size * ds.gradient_accumulation_steps * world_size,
        "gradient_clipping": ds.gradient_clipping,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == "bf16"},
        "fp16": {"enabled": dtype == "fp16"},
        "optimizer": {
            "type": "AdamW",
            # Without offload, torch's AdamW, fused (one kernel for all tensors, on CPU too: the Trainer's
            # default too): DeepSpeed's FusedAdam needs CUDA kernels. Per-tensor AdamW cost a 2-layer
            # encoder's step a quarter of its time on CPU (17.2 vs 13.0 ms, benchmarks/throughput.py).
            "params": {
                "lr": phase.learning_rate,
                "weight_decay": phase.weight_decay,
                "torch_adam": True,
                "fused": True,
            }
            if not ds.offload_optimizer
            else {"lr": phase.learning_rate, "weight_decay": phase.weight_decay},
        },
        "scheduler": {
            "type": "WarmupDecayLR",
            "params": {
                "total_num_steps": max(total_steps, warmup + 1),
                "warmup_min_lr": 0.0,
                "warmup_max_lr": phase.learning_rate,
                "warmup_num_steps": warmup,
                "warmup_type": "linear",
            },
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def weights_dtype(config: dict[str, Any]) -> torch.dtype:
    """The type the engine of ``config`` (``deepspeed_config``'s) keeps the model's weights in: bf16 or fp16
    when it trains in them, else fp32. Loading the encoder in it halves a 16-bit run's host memory and is
    what DeepSpeed would cast to anyway (its fp32 master weights start from the 16-bit ones either way)."""
    if config.get("bf16", {}).get("enabled"):
        return torch.bfloat16
    if config.get("fp16", {}).get("enabled"):
        return torch.float16
    return torch.float32


def partitions_weights(config: dict[str, Any]) -> bool:
    """Whether the engine of ``config`` partitions the weights themselves over the workers (ZeRO stage 3)."""
    return int(config["zero_optimization"]["stage"]) == 3


@contextlib.contextmanager
def partitioned_loading(config: dict[str, Any]) -> Iterator[None]:
    """While open, transformers' ``from_pretrained`` builds a model the ZeRO-3 way (``config``: the phase's
    engine config, stage 3): under DeepSpeed's ``zero.Init`` every rank allocates only its own partition of
    each weight, and rank 0 alone reads the checkpoint's values and scatters them, instead of every rank
    holding the whole model before the engine partitions it. Needs the process group (``init_distributed``).

    transformers finds the config through a weak reference to an ``HfDeepSpeedConfig``: the object is held
    here while the block runs and the reference cleared after it, so later loads (evaluation, another
    phase's engine settings) are plain again.
    """
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    held = HfDeepSpeedConfig(config)
    try:
        yield
    finally:
        unset_hf_deepspeed_config()
        del held


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters only, without weight decay on biases and LayerNorm weights."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith(_NO_DECAY) else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> None:
    """Join the process group Ray Train / torchrun set up, or make one (rendezvous bounded by ``timeout_s``).

    A process that is not one rank of several (no ``WORLD_SIZE`` above 1: a plain run, a Tune trial that
    trains in its own actor) makes a group of its own on a fresh local port, whatever ``MASTER_PORT`` it
    inherited: a parent's variables (a test runner, a notebook, a driver that made a group itself) name a
    port that process's store still holds.
    """
    deepspeed = import_deepspeed()  # the worker's first DeepSpeed import
    skip_unused_ops()
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_s)
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    try:
        if not torch.distributed.is_initialized() and not launched:
            for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
                os.environ.setdefault(name, value)  # read by DeepSpeed (device, logging): one rank
            where = f"127.0.0.1:{_free_port()}"
            torch.distributed.init_process_group(
                backend, init_method=f"tcp://{where}", rank=0, world_size=1, timeout=timeout
            )
        deepspeed.init_distributed(dist_backend=backend, timeout=timeout)  # joins the group made above
    except torch.distributed.DistError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StartupError(
            f"process-group rendezvous at {where} (rank {os.environ.get('RANK')} of "
            f"{os.environ.get('WORLD_SIZE')}) did not complete within {timeout_s:.0f}s (scaling.timeout_s): "
            f"{first_line}"
        ) from None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_engine(
    model: nn.Module, phase: PhaseConfig, ds: DeepSpeedConfig, total_steps: int, device: torch.device
) -> Any:
    """Wrap ``model`` in a DeepSpeed engine with its optimizer and schedule for ``total_steps``."""
    import deepspeed

    world_size = torch.distributed.get_world_size()
    config = deepspeed_config(phase, ds, total_steps, world_size, device)
    if not any(hasattr(p, "ds_id") for p in model.parameters()):
        model.to(device)  # a model built under zero.Init (partitioned_loading) is placed already
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=parameter_groups(model, phase.weight_decay), config=config
    )
    if world_size == 1 and ds.zero_stage == 0:
        # One rank has nothing to average: DeepSpeed would still flatten, all-reduce and copy back every
        # gradient after each backward (ZeRO stages keep it: their optimizer collects gradients there).
        engine.enable_backward_allreduce = False
    return engine


def save_checkpoint(engine: Any, directory: Path, state: dict[str, Any]) -> None:
    """Save model, optimizer and schedule (every rank writes its shards) plus ``state`` as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    engine.save_checkpoint(str(directory), tag="engine", client_state={"xstilts": state})
    if torch.distributed.get_rank() == 0:
        (directory / "state.json").write_text(json.dumps(state, indent=2))


def load_checkpoint(engine: Any, directory: Path) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote and return its ``state``."""
    _, client_state = engine.load_checkpoint(str(directory), tag="engine")
    if client_state is None:
        raise FileNotFoundError(f"no DeepSpeed checkpoint in {directory}")
    return dict(client_state["xstilts"])


def full_state_dict(engine: Any) -> dict[str, torch.Tensor]:
    """The whole module's weights on CPU, gathered from ZeRO-3 partitions when needed."""
    import deepspeed

    module = engine.module
    if engine.zero_optimization_stage() == 3:
        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            return {name: value.detach().float().cpu().clone() for name, value in module.state_dict().items()}
    return {name: value.detach().float().cpu().clone() for name, value in module.state_dict().items()}
