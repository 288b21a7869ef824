"""The GPU check of issue 12: the memory plan against measured GPU memory, and what freezing buys on a GPU.

One plain process, no Ray, no hub access (random weights of a real shape):

1. A trial step of an XLM-R base-shaped encoder (278M parameters, random init, saved and loaded the way
   training loads it, partitioned under ZeRO-3) with a sentence-pair head, under ZeRO-3 with optimizer
   offload (DeepSpeed's CPU Adam; without it, ZeRO-3 alone, said so), bf16: the memory plan's estimate
   (``trainers/memory.py``) beside ``torch.cuda.max_memory_allocated`` over the steps, and the peak of
   loading, engine start and first step before them, beside the same start from a whole fp32 load.
2. The freeze-depth table (``benchmarks/freeze.py``'s measurement, ZeRO 0, bf16) at depths 0, L/4, L/2,
   3L/4 and L: step time and peak memory, with the plan's estimate per depth.

Without DeepSpeed or ``datasets`` (which xstilts' training path imports; install them, from wheels on a
machine that cannot reach a registry, for both rows), they are skipped, said so, and a plain-torch fp32 AdamW
step (``--plain-torch`` asks for it) stands in for row 1, against the plan's fp32, ZeRO-0 accounting. Without a
GPU it says so in one line and exits with 1.

    python benchmarks/gpu_check.py [--batch 32] [--length 128] [--steps 5] [--json results.json]

``--smoke-on-cpu`` runs the same code on CPU with the tiny encoder (fp32, no offload; no memory figures): a
check of the script itself, which the tests run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a GPU machine may have the tree without the package installed
sys.path.insert(0, str(ROOT / "benchmarks"))

MIB = 2**20


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="sequence pairs per step (default 32)")
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (default 5)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--plain-torch", action="store_true", help="only the plain-torch trial (no DeepSpeed)"
    )
    parser.add_argument("--smoke-on-cpu", action="store_true", help="check the script on CPU (tiny encoder)")
    parser.add_argument("--cache-dir", default="~/.cache/xstilts", help="where --smoke-on-cpu builds tiny")
    return parser.parse_args()


def _no_gpu() -> str | None:
    """Why there is no GPU to check, or None."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    return None


def _versions() -> dict[str, str | None]:
    """Versions of the libraries the check uses (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in ("torch", "transformers", "deepspeed", "datasets"):
        try:
            found[name] = importlib.metadata.version(name) if importlib.util.find_spec(name) else None
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _random_xlmr_base(directory: Path) -> str:
    """XLM-R base's shape (trainers/memory.py) with random weights, saved where build_model can load it."""
    import torch
    from transformers import XLMRobertaModel

    from trainers.encoders import shape_config
    from trainers.memory import ENCODER_SHAPES

    config = shape_config(ENCODER_SHAPES["xlm-roberta-base"])
    torch.manual_seed(0)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(directory)
    return str(directory)


def _plan(
    name: str, args: argparse.Namespace, freeze_depth: int, deepspeed: dict[str, Any], device: str
) -> Any:
    """The memory plan of one target phase of ``name`` on pair classification (PAWS-X) at this batch."""
    from trainers.config import TransferConfig
    from trainers.memory import memory_plan

    config = TransferConfig.from_dict(
        {
            "model": {"name_or_path": name, "max_seq_length": args.length, "doc_stride": args.length // 2},
            "target": {"task": "pawsx", "batch_size": args.batch, "freeze_depth": freeze_depth},
            "deepspeed": deepspeed,
        }
    )
    return memory_plan(config, config.target, ["pawsx"], device=device)  # type: ignore[arg-type]


def _offload_ready() -> str | None:
    """Why DeepSpeed's CPU Adam (optimizer offload) cannot be used here, or None once it is built."""
    from trainers.deepspeed_ops import prepare_ops

    try:
        prepare_ops(True, timeout_s=600)
    except Exception as error:  # a missing compiler or CUDA headers: the row falls back, the check goes on
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    return None


def zero3_trial(path: str, name: str, args: argparse.Namespace, device: Any, out: dict[str, Any]) -> None:
    """Row 1: loading, engine start and steps under ZeRO-3 (with optimizer offload where it builds)."""
    import torch
    from freeze import HEAD, fixed_batch, vocabulary

    from trainers import _loop, engine
    from trainers._phase import build_model
    from trainers.config import DeepSpeedConfig, PhaseConfig

    cuda = device.type == "cuda"
    offload_error = _offload_ready() if cuda else "not on --smoke-on-cpu (its JIT build takes minutes)"
    settings = {
        "zero_stage": 3,
        "offload_optimizer": offload_error is None,
        "precision": "bf16" if cuda else "fp32",
    }
    if offload_error is not None:
        print(f"ZeRO-3 row without optimizer offload: CPU Adam unavailable ({offload_error})")
    ds = DeepSpeedConfig(**settings)  # type: ignore[arg-type]
    phase = PhaseConfig(learning_rate=1e-5, batch_size=args.batch, warmup_ratio=0.0)
    config = engine.deepspeed_config(phase, ds, args.steps + 2, 1, device)
    plan = _plan(name, args, 0, settings, "cuda" if cuda else "cpu")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model = build_model(path, [HEAD], 0, 0, engine_config=config)
    eng = engine.build_engine(model, phase, ds, args.steps + 2, device)
    batch = _loop.to_device(fixed_batch(vocabulary(model), args.batch, args.length), device)
    _loop.train_step(eng, HEAD.task, batch)
    _loop.wait_for_device(device)
    setup_s = time.perf_counter() - started
    setup_peak = torch.cuda.max_memory_allocated() if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        _loop.train_step(eng, HEAD.task, batch)
    _loop.wait_for_device(device)
    step_s = (time.perf_counter() - started) / args.steps
    peak = torch.cuda.max_memory_allocated() if cuda else None
    described = "ZeRO 3" + (" + optimizer offload" if settings["offload_optimizer"] else "")
    print(f"{name} trial, {described}, {settings['precision']}, batch {args.batch} x {args.length}:")
    print(f"  memory plan: {plan.describe()}")
    print(
        f"  measured:    {_mib(peak)} at the steps' peak; {_mib(setup_peak)} loading, engine start, first step"
    )
    if peak:
        print(f"  plan / measured: {plan.total / peak:.2f}")
    print(f"  step: {step_s:.3f} s; loading to the end of the first step: {setup_s:.1f} s")
    out["zero3_trial"] = {
        **settings,
        "encoder": name,
        "batch": args.batch,
        "length": args.length,
        "plan_bytes": plan.total,
        "plan": plan.describe(),
        "peak_bytes": peak,
        "setup_peak_bytes": setup_peak,
        "step_s": step_s,
        "setup_s": setup_s,
        "offload_error": offload_error,
    }
    del eng, model
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    # The same start from a whole load, the way before partitioned loading: the model goes to the GPU whole,
    # in the checkpoint's fp32, and the engine casts and partitions it there.
    model = build_model(path, [HEAD], 0, 0)
    eng = engine.build_engine(model, phase, ds, args.steps + 2, device)
    _loop.train_step(eng, HEAD.task, batch)
    _loop.wait_for_device(device)
    whole_peak = torch.cuda.max_memory_allocated() if cuda else None
    print(f"  the same start from a whole fp32 load (before partitioned loading): {_mib(whole_peak)}")
    out["zero3_trial"]["whole_load_setup_peak_bytes"] = whole_peak
    del eng, model
    if cuda:
        torch.cuda.empty_cache()


def torch_trial(path: str, name: str, args: argparse.Namespace, device: Any, out: dict[str, Any]) -> None:
    """Row 1 without xstilts' training path (no DeepSpeed, or no ``datasets``): the encoder, a linear
    sentence-pair head on the first token and torch's fp32 AdamW, against the plan's fp32, ZeRO-0 accounting."""
    import torch
    from transformers import AutoModel

    cuda = device.type == "cuda"
    plan = _plan(name, args, 0, {"zero_stage": 0, "precision": "fp32"}, "cuda" if cuda else "cpu")
    encoder = AutoModel.from_pretrained(path, dtype=torch.float32).to(device)
    head = torch.nn.Linear(encoder.config.hidden_size, 2).to(device)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, encoder.config.vocab_size, (args.batch, args.length), generator=generator).to(
        device
    )
    labels = torch.randint(0, 2, (args.batch,), generator=generator).to(device)
    encoder.train()

    def step() -> None:
        states = encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        torch.nn.functional.cross_entropy(head(states[:, 0]), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)  # the gradients stay allocated, as the plan counts them

    step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - started) / args.steps
    peak = torch.cuda.max_memory_allocated() if cuda else None
    print(f"{name} trial, plain torch, fp32 AdamW, batch {args.batch} x {args.length}:")
    print(f"  memory plan: {plan.describe()}")
    ratio = f"; plan / measured {plan.total / peak:.2f}" if peak else ""
    print(f"  measured:    {_mib(peak)} at the steps' peak{ratio}")
    print(f"  step: {step_s:.3f} s")
    out["torch_trial"] = {"encoder": name, "plan_bytes": plan.total, "peak_bytes": peak, "step_s": step_s}


def freeze_table(path: str, name: str, args: argparse.Namespace, device: Any, out: dict[str, Any]) -> None:
    """Row 2: benchmarks/freeze.py's measurement at depths 0, L/4, L/2, 3L/4, L, with the plan per depth."""
    from freeze import depths_of, encoder_size, fixed_batch, measure_depth, table

    cuda = device.type == "cuda"
    layers, vocab = encoder_size(path)
    batch = fixed_batch(vocab, args.batch, args.length)
    precision = "bf16" if cuda else "fp32"
    rows = [measure_depth(path, depth, batch, args.steps, device) for depth in depths_of(layers, "quarters")]
    plans = {
        row.depth: _plan(name, args, row.depth, {"precision": precision}, "cuda" if cuda else "cpu").total
        for row in rows
    }
    print(f"freeze depth, {name}, ZeRO 0, {precision}, batch {args.batch} x {args.length}, {layers} layers:")
    print("\n".join(table(rows, plans)))
    out["freeze_table"] = [{**row.__dict__, "plan_bytes": plans[row.depth]} for row in rows]


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MIB:,.0f} MiB"


def main() -> int:
    """Run the check; 1 (with one line saying why) when there is no GPU to check."""
    args = _parse()
    if not args.smoke_on_cpu and (why := _no_gpu()) is not None:
        print(f"gpu_check: no GPU: {why}; nothing to check on this machine", file=sys.stderr)
        return 1
    versions = _versions()
    if versions["transformers"] is None:
        print("gpu_check: transformers is not installed; nothing can be checked", file=sys.stderr)
        return 1
    import torch

    from trainers import engine
    from trainers.encoders import resolve_encoder

    device = torch.device("cpu" if args.smoke_on_cpu else "cuda")
    out: dict[str, Any] = {"versions": versions, "device": "cpu"}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        out["device"] = f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB"
    print(
        f"gpu_check on {out['device']}: "
        + ", ".join(f"{k} {v or 'not installed'}" for k, v in versions.items())
    )
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        if args.smoke_on_cpu:
            path, name = resolve_encoder("tiny", args.cache_dir), "tiny"
        else:
            path, name = _random_xlmr_base(Path(scratch) / "xlm-roberta-base"), "xlm-roberta-base"
        missing = [package for package in ("deepspeed", "datasets") if versions[package] is None]
        if missing or args.plain_torch:
            why = (
                f"not installed: {', '.join(missing)} (xstilts' training path needs them)"
                if missing
                else "--plain-torch"
            )
            print(
                f"{why}: the ZeRO-3 trial and the freeze table are skipped; a plain-torch fp32 trial stands in"
            )
            torch_trial(path, name, args, device, out)
        else:
            engine.init_distributed(device)
            zero3_trial(path, name, args, device, out)
            freeze_table(path, name, args, device, out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
