"""GPU throughput and model FLOPs utilisation: the xstilts phase loop beside a Hugging Face ``Trainer``.

Issue 15, items 2 and 3 on a GPU: XLM-R base and large shapes (random weights from a config: nothing is
downloaded), bf16, batches of ``--batch`` sequences of ``--seq`` tokens (``--min-len`` below ``--seq``:
random lengths, each batch padded to its longest on both sides), a 2-class sequence-pair head (PAWS-X's),
AdamW with linear warm-up and decay, gradient clipping at 1.0. Per shape, four rows, each in a fresh
process (so no row inherits another's memory, CUDA state or accelerate's process-wide state):

- ``xstilts``: the target phase's step loop as ``trainers/target.py`` runs it (its batch stream, collate,
  ``_loop.train_step`` on the DeepSpeed engine ``trainers.engine.build_engine`` makes, bf16, the engine's
  AdamW), ZeRO 0 and ZeRO 2;
- ``Trainer``: ``AutoModelForSequenceClassification`` (XLM-R's classifier) under ``transformers.Trainer``
  (``bf16=True``: autocast over fp32 weights; its default optimizer), without DeepSpeed and with ZeRO 2
  (``TrainingArguments.deepspeed``).

Each row times ``--steps`` optimizer steps after ``--warmup`` untimed ones (CUDA synchronised at both
ends), and gives tokens per second (non-pad tokens) and model FLOPs utilisation: training FLOPs per token
= 3 x the forward FLOPs of every layer (``trainers.memory``'s shapes and ``layer_forward_flops``: the four
attention projections, the FFN, QK^T and AV; embeddings and the head not counted) x tokens/s, over the GPU's
dense bf16 peak (``PEAK_BF16_TFLOPS`` by ``torch.cuda.get_device_name``, or ``--peak-tflops``). A row whose
packages are missing (DeepSpeed for the xstilts rows and the ZeRO-2 ``Trainer`` row, ``datasets`` for the
xstilts rows, accelerate for the ``Trainer`` rows) says so instead of a number. On a machine without a GPU
the script prints one line and exits 0. The step-time and memory rows against freeze depth and the memory
plan are benchmarks/gpu_check.py's.

This script shares no code with benchmarks/throughput.py beyond the ``trainers`` modules both call: that
one runs ``worker.run_local`` on the miniature on CPU (fp32, ``use_cpu``), and importing it needs the whole
data stack, which a bare GPU machine lacks. It runs without xstilts installed (the repository root goes on
``sys.path``). The H200 machines lent here have torch, transformers and accelerate but neither DeepSpeed nor
``datasets``: for the xstilts rows carry wheels of deepspeed (an sdist on PyPI: ``pip wheel --no-deps
deepspeed``), hjson, pydantic, pydantic-core, annotated-types, typing-inspection, datasets, dill and
multiprocess (the device tool's README says how). ``python benchmarks/gpu_perf.py [--shapes xlm-roberta-base,xlm-roberta-large] [--batch 32]
[--seq 256] [--warmup 10] [--steps 30]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    # Dense (no 2:4 sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, by a substring of
    # torch.cuda.get_device_name; the first match wins, so the variants come before the plain names.
    ("GH200", 989.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # H200 SXM: the H100 SXM's GH100 at the same clocks, more memory
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
)

LOOPS: tuple[tuple[str, int], ...] = (("xstilts", 0), ("xstilts", 2), ("Trainer", 0), ("Trainer", 2))
"""The rows of each shape: (loop, ZeRO stage); ZeRO 0 on the ``Trainer`` side is no DeepSpeed at all."""

LEARNING_RATE = 2e-5
NUM_LABELS = 2


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of the named GPU, or ``None`` for one not in ``PEAK_BF16_TFLOPS``."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


def missing_packages(loop: str, zero: int) -> list[str]:
    """The packages the row needs that this Python lacks."""
    needed = ["transformers"]
    if loop == "xstilts":
        needed += ["deepspeed", "datasets", "yaml"]
    else:
        needed += ["accelerate"] + (["deepspeed"] if zero else [])
    return [name for name in needed if importlib.util.find_spec(name) is None]


def synthetic_rows(count: int, seq: int, min_len: int, vocab: int, seed: int) -> list[dict[str, Any]]:
    """Feature rows as xstilts' features hold them: unpadded token ids, an all-ones mask, a class label."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, seq + 1, (count,), generator=generator).tolist()
    rows = []
    for length in lengths:
        ids = torch.randint(5, vocab, (length,), generator=generator).tolist()
        label = int(torch.randint(0, NUM_LABELS, (1,), generator=generator))
        rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": label})
    return rows


def encoder_config(shape_name: str) -> Any:
    """A transformers config of the named shape (``trainers.memory.ENCODER_SHAPES``), random-init ready."""
    from trainers.encoders import shape_config
    from trainers.memory import ENCODER_SHAPES

    config = shape_config(ENCODER_SHAPES[shape_name])
    config.num_labels = NUM_LABELS  # the Trainer side's classifier; xstilts' head has its own spec
    return config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_xstilts(args: argparse.Namespace, zero: int, rows: list[dict[str, Any]]) -> float:
    """Seconds of ``args.steps`` steps of the target phase's loop after ``args.warmup`` (synchronised)."""
    import torch
    from transformers import AutoModel

    from trainers import _loop
    from trainers.config import DeepSpeedConfig, PhaseConfig
    from trainers.data import collate
    from trainers.engine import build_engine, init_distributed
    from trainers.modeling import HeadSpec, TransferModel
    from trainers.progress import PhaseProgress
    from trainers.tasks import TaskType

    device = torch.device("cpu") if args.cpu else torch.device("cuda", 0)
    total = args.warmup + args.steps
    init_distributed(device)
    torch.manual_seed(0)
    with torch.device(device):  # random init on the GPU: seconds, not a minute, for the large shape
        encoder = AutoModel.from_config(encoder_config(args.shape))
        encoder.pooler = None  # as _phase.build_model: heads read token states
        model = TransferModel(encoder, [HeadSpec("pawsx", TaskType.PAIR_CLASSIFICATION, NUM_LABELS)])
    phase = PhaseConfig(learning_rate=LEARNING_RATE, batch_size=args.batch, max_steps=total)
    ds = DeepSpeedConfig(zero_stage=zero, precision="fp32" if args.cpu else "bf16")
    engine = build_engine(model, phase, ds, total, device)
    stream = _loop.batch_indices(len(rows), args.batch, 0, 0, 1)
    shown = PhaseProgress("target", total)
    started = 0.0
    for step in range(1, total + 1):
        batch = _loop.to_device(collate([rows[i] for i in next(stream)], 1), device)
        loss = _loop.train_step(engine, "pawsx", batch)
        shown.advance(step, loss)
        if step == args.warmup:
            _loop.wait_for_device(device)
            started = time.perf_counter()
    _loop.wait_for_device(device)
    return time.perf_counter() - started


def run_trainer(args: argparse.Namespace, zero: int, rows: list[dict[str, Any]]) -> float:
    """Seconds of ``args.steps`` ``Trainer`` steps after ``args.warmup`` (synchronised at both ends)."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    warmup, total, cpu = args.warmup, args.warmup + args.steps, args.cpu
    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step in (warmup, total):
                if torch.cuda.is_available() and not cpu:
                    torch.cuda.synchronize()
                marks[state.global_step] = time.perf_counter()

    def pad(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # What DataCollatorWithPadding does (pad to the batch's longest), without a tokenizer.
        ids = [torch.tensor(row["input_ids"]) for row in batch]
        masks = [torch.tensor(row["attention_mask"]) for row in batch]
        return {
            "input_ids": torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=1),
            "attention_mask": torch.nn.utils.rnn.pad_sequence(masks, batch_first=True, padding_value=0),
            "labels": torch.tensor([row["labels"] for row in batch]),
        }

    deepspeed: dict[str, Any] | None = None
    if zero:
        os.environ.update(
            RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())
        )
        deepspeed = {
            "zero_optimization": {"stage": zero},
            "bf16": {"enabled": "auto"},
            "train_micro_batch_size_per_gpu": "auto",
            "train_batch_size": "auto",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
        }
    torch.manual_seed(0)
    with torch.device("cpu" if cpu else "cuda"):
        model = AutoModelForSequenceClassification.from_config(encoder_config(args.shape))
    training = TrainingArguments(
        output_dir=str(Path(args.scratch) / "trainer"),
        max_steps=total,
        per_device_train_batch_size=args.batch,
        learning_rate=LEARNING_RATE,
        warmup_steps=max(1, round(0.1 * total)),  # xstilts' warmup_ratio 0.1
        lr_scheduler_type="linear",
        weight_decay=0.01,
        bf16=not cpu,
        use_cpu=cpu,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        deepspeed=deepspeed,
    )
    trainer = Trainer(model=model, args=training, train_dataset=rows, data_collator=pad, callbacks=[Clock()])
    trainer.train()
    return marks[total] - marks[warmup]


def one_row(args: argparse.Namespace) -> None:
    """The ``--row`` child: measure one (shape, loop, ZeRO) row and print it as one JSON line."""
    import torch

    from trainers.memory import ENCODER_SHAPES

    os.environ.setdefault("XSTILTS_PROGRESS_EVERY_S", "3600")  # no progress lines in the table's output
    shape = ENCODER_SHAPES[args.shape]
    rows = synthetic_rows(max(args.batch * 64, 1024), args.seq, args.min_len, shape.vocab, seed=1)
    runner = run_xstilts if args.loop == "xstilts" else run_trainer
    seconds = runner(args, args.zero, rows)
    mean_len = sum(len(row["input_ids"]) for row in rows) / len(rows)
    tokens_per_s = args.steps * args.batch * mean_len / seconds
    flops_per_token = 3 * shape.layers * shape.layer_forward_flops(round(mean_len))
    result = {
        "s_per_step": seconds / args.steps,
        "tokens_per_s": tokens_per_s,
        "tflops": tokens_per_s * flops_per_token / 1e12,
        "peak_gib": 0.0 if args.cpu else torch.cuda.max_memory_allocated() / 2**30,
    }
    print("ROW " + json.dumps(result), flush=True)


def measure(args: argparse.Namespace, shape: str, loop: str, zero: int) -> dict[str, Any]:
    """One row in a fresh process: its numbers, or why there are none."""
    missing = missing_packages(loop, zero)
    if missing:
        return {"note": f"not run: {', '.join(missing)} not installed"}
    command = [
        sys.executable,
        __file__,
        *("--row", "--shape", shape, "--loop", loop, "--zero", str(zero)),
        *("--batch", str(args.batch), "--seq", str(args.seq), "--min-len", str(args.min_len)),
        *("--warmup", str(args.warmup), "--steps", str(args.steps), "--scratch", args.scratch),
        *(["--cpu"] if args.cpu else []),
    ]
    # A row is one process of its own: rank variables a parent holds (a test runner that ran xstilts in-process,
    # a launcher) would make the Trainer's accelerate expect a group it is not part of.
    inherited = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in inherited}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.row_timeout, check=False, env=env
    )
    line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("ROW ")), None)
    if done.returncode != 0 or line is None:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        return {"note": f"failed: {why[:160]}"}
    result: dict[str, Any] = json.loads(line[4:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="xlm-roberta-base,xlm-roberta-large")
    parser.add_argument("--batch", type=int, default=32, help="sequences per step")
    parser.add_argument("--seq", type=int, default=256, help="the longest sequence, in tokens")
    parser.add_argument("--min-len", type=int, default=None, help="the shortest (default: --seq, no padding)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak")
    parser.add_argument("--row-timeout", type=float, default=300.0, help="seconds one row may take")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="run the rows on CPU in fp32: a check of the code paths, not a measurement",
    )
    parser.add_argument("--row", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--zero", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", default="/tmp/xstilts-gpu-perf", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.min_len = args.seq if args.min_len is None else args.min_len
    if not 1 <= args.min_len <= args.seq or args.batch < 1 or args.warmup < 1 or args.steps < 1:
        parser.error("need 1 <= --min-len <= --seq, --batch >= 1, --warmup >= 1 and --steps >= 1")
    sys.path.insert(0, str(REPO))
    from trainers.memory import ENCODER_SHAPES

    shapes = args.shapes.split(",")
    unknown = [s for s in shapes if s not in ENCODER_SHAPES or ENCODER_SHAPES[s].family != "bert"]
    if unknown:
        parser.error(f"--shapes: {', '.join(unknown)} is not an XLM-R/BERT shape of trainers.memory")
    if args.row:
        one_row(args)
        return
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("gpu_perf: no GPU (torch.cuda.is_available() is False): nothing measured")
        return
    name = "CPU (--cpu: fp32, a check of the code paths)" if args.cpu else torch.cuda.get_device_name(0)
    peak = None if args.cpu else args.peak_tflops or peak_tflops(name)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    table = {
        (shape, loop, zero): measure(args, shape, loop, zero) for shape in shapes for loop, zero in LOOPS
    }
    lengths = (
        f"{args.seq}" if args.min_len == args.seq else f"{args.min_len}..{args.seq} (padded to the longest)"
    )
    precision = "fp32" if args.cpu else "bf16"
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {name}, torch {torch.__version__}, "
        f"{platform.machine()}, load average {load:.1f}; {precision}, batch {args.batch} x {lengths} tokens, "
        f"{args.steps} steps timed after {args.warmup}; peak {f'{peak:.0f} TFLOP/s' if peak else 'unknown'}; "
        f"all rows in {time.perf_counter() - began:.0f} s"
    )
    print("| shape | loop | ZeRO | s/step | tokens/s | xstilts / Trainer | TFLOP/s | MFU | peak GiB | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    ratios, mfu_large = [], None
    for (shape, loop, zero), row in table.items():
        if "note" in row:
            print(f"| {shape} | {loop} | {zero} | | | | | | | {row['note']} |")
            continue
        theirs = table[(shape, "Trainer", zero)].get("tokens_per_s")
        ratio = row["tokens_per_s"] / theirs if loop == "xstilts" and theirs else None
        if ratio is not None:
            ratios.append(ratio)
        mfu = row["tflops"] / peak if peak else None
        if shape == "xlm-roberta-large" and loop == "xstilts" and zero == 0:
            mfu_large = mfu
        print(
            f"| {shape} | {loop} | {zero} | {row['s_per_step']:.4f} | {row['tokens_per_s']:.0f} | "
            f"{'' if ratio is None else f'{ratio:.2f}'} | {row['tflops']:.0f} | "
            f"{'n/a' if mfu is None else f'{100 * mfu:.1f}%'} | {row['peak_gib']:.1f} | |"
        )
    print(
        f"RESULT gpu={'cpu' if args.cpu else name.replace(' ', '_')} "
        f"throughput_ratio_min={f'{min(ratios):.2f}' if ratios else 'n/a'} "
        f"mfu_large={'n/a' if mfu_large is None else f'{mfu_large:.3f}'}"
    )


if __name__ == "__main__":
    main()
