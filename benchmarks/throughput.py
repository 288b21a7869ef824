"""Training-loop throughput: the xstilts target phase beside a plain Hugging Face ``Trainer``.

Same encoder, same tokenized English train features (xstilts' own, handed to the ``Trainer`` as a
``datasets.Dataset``), same batch size, both padding each batch to its longest sequence, same precision
(fp32 on CPU), AdamW with linear warm-up and decay in both. The xstilts side is the real per-worker
function (``trainers.worker.run_local``: DeepSpeed engine, the phase loop, evaluation); the ``Trainer``
side is ``AutoModelFor{TokenClassification,SequenceClassification}`` on the same encoder directory.

What is compared is the *marginal* step time: each side runs ``--short`` and ``--long`` steps and the
difference in wall time is divided by the difference in steps, so the fixed costs (engine start-up,
evaluation, the ``Trainer``'s set-up) cancel and what remains is the loop itself: fetching and collating
the batch, forward, backward and the optimizer step. Runs are interleaved (``--repeats``) so background
load hits both sides alike; the table gives medians, examples and (non-pad) tokens per second, and the
ratio xstilts / Trainer (above 1.0: xstilts is faster).
``python benchmarks/throughput.py [--encoders tiny,minilm] [--targets udpos,pawsx] [--repeats 3]``.
"""

from __future__ import annotations

import os

# Both sides with the same threads: accelerate (under the Trainer) sets these to the core count when
# unset, and torch reads them when it starts, so they are set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from trainers.config import TransferConfig
from trainers.worker import Plan, run_local

BATCH = 16
SEQ = 64
LR = {"tiny": 1e-3, "minilm": 5e-5}


def config(encoder: str, target: str, steps: int, cache: Path, out: Path) -> TransferConfig:
    """A target phase alone on the miniature: ``steps`` steps, one dev evaluation at the end, English only."""
    return TransferConfig.from_dict(
        {
            "target": {
                "task": target,
                "learning_rate": LR[encoder],
                "batch_size": BATCH,
                "max_steps": steps,
                "eval_every": steps,
                "warmup_ratio": 0.1,
            },
            "model": {"name_or_path": encoder, "max_seq_length": SEQ, "doc_stride": 32},
            "data": {"source": "miniature", "cache_dir": str(cache), "max_eval_examples": 32},
            "deepspeed": {"zero_stage": 0, "precision": "fp32"},
            "evaluation": {"languages": ["en"], "batch_size": 64},
            "output_dir": str(out),
        }
    )


def xstilts_wall(encoder: str, target: str, steps: int, cache: Path, root: Path) -> float:
    """Wall seconds of the per-worker function on a target-only plan of ``steps`` steps."""
    out = Path(tempfile.mkdtemp(dir=root))
    started = time.perf_counter()
    run_local(Plan.for_config(config(encoder, target, steps, cache, out)))
    wall = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return wall


def trainer_inputs(encoder: str, target: str, cache: Path, root: Path) -> tuple[str, Any, Any, int]:
    """The encoder directory, xstilts' train features as a ``datasets.Dataset``, the tokenizer, the label count."""
    from trainers.data import resolve_train_task
    from trainers.encoders import resolve_encoder
    from trainers.prepare import label_names_for, load_tokenizer, train_features
    from trainers.tasks import get_task

    cfg = config(encoder, target, 1, cache, root / "features")
    encoder_dir = resolve_encoder(encoder, str(cache))
    task = resolve_train_task(get_task(target))
    tokenizer = load_tokenizer(encoder_dir)
    labels = label_names_for(task, cfg)
    features = train_features(cfg, task, tokenizer, labels)
    keep = [
        c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in features.column_names
    ]
    if "labels" not in keep and "label" in features.column_names:
        features = features.rename_column("label", "labels")
        keep.append("labels")
    return encoder_dir, features.select_columns(keep), tokenizer, len(labels)


def trainer_wall(
    inputs: tuple[str, Any, Any, int], target: str, encoder: str, steps: int, root: Path
) -> float:
    """Wall seconds of ``Trainer.train()`` for ``steps`` steps on the same features."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    encoder_dir, features, tokenizer, num_labels = inputs
    tagging = isinstance(features[0]["labels"], list)
    model_class = AutoModelForTokenClassification if tagging else AutoModelForSequenceClassification
    model = model_class.from_pretrained(encoder_dir, num_labels=num_labels)
    collator = (
        DataCollatorForTokenClassification(tokenizer) if tagging else DataCollatorWithPadding(tokenizer)
    )
    args = TrainingArguments(
        output_dir=str(root / "hf"),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=LR[encoder],
        warmup_steps=max(1, round(0.1 * steps)),  # xstilts' warmup_ratio 0.1
        lr_scheduler_type="linear",
        optim="adamw_torch",
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collator)
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def mean_tokens(features: Any) -> float:
    """Non-pad tokens per example (the features are unpadded)."""
    return statistics.fmean(sum(mask) for mask in features["attention_mask"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="tiny")
    parser.add_argument("--targets", default="udpos,pawsx")
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=110)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("XSTILTS_PROGRESS_EVERY_S", "3600")  # no progress lines in the table's output
    root = Path(tempfile.mkdtemp(prefix="xstilts-throughput-"))
    cache = root / "cache"
    rows = []
    try:
        for encoder in args.encoders.split(","):
            for target in args.targets.split(","):
                inputs = trainer_inputs(encoder, target, cache, root)
                xstilts_wall(encoder, target, 2, cache, root)  # warm-up: feature caches, op loading
                ours, theirs = [], []
                for _ in range(args.repeats):
                    short, long_ = (
                        xstilts_wall(encoder, target, n, cache, root) for n in (args.short, args.long)
                    )
                    ours.append((long_ - short) / (args.long - args.short))
                    short, long_ = (
                        trainer_wall(inputs, target, encoder, n, root) for n in (args.short, args.long)
                    )
                    theirs.append((long_ - short) / (args.long - args.short))
                tokens = mean_tokens(inputs[1]) * BATCH
                rows.append((encoder, target, statistics.median(ours), statistics.median(theirs), tokens))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}; batch {BATCH} x <= {SEQ} tokens, fp32, marginal step time of "
        f"{args.long} vs {args.short} steps, median of {args.repeats}"
    )
    print(
        "| encoder | target | xstilts s/step | Trainer s/step | xstilts tokens/s | Trainer tokens/s | xstilts / Trainer |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    worst = None
    for encoder, target, ours, theirs, tokens in rows:
        if ours <= 0 or theirs <= 0:
            # The long runs' extra steps took less time than the fixed costs' noise: no step time measured.
            print(f"| {encoder} | {target} | {ours:.4f} | {theirs:.4f} | n/a | n/a | n/a |")
            continue
        ratio = theirs / ours
        worst = ratio if worst is None else min(worst, ratio)
        print(
            f"| {encoder} | {target} | {ours:.4f} | {theirs:.4f} | {tokens / ours:.0f} | {tokens / theirs:.0f} | "
            f"{ratio:.2f} |"
        )
    if worst is None:
        print("not measured: the extra steps drowned in the fixed costs' noise; raise --long or --repeats")
    print(f"RESULT throughput_ratio_min={'n/a' if worst is None else f'{worst:.2f}'}")


if __name__ == "__main__":
    main()
