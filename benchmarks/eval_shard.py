"""Zero-shot evaluation on 1 rank beside 2 ranks: the same model, languages and batches, sharded or not.

Each rank is a process of a gloo group with one thread (so 2 ranks use 2 cores), started directly (no
Ray: what is timed is the zero-shot phase, ``trainers.zero_shot_eval.run``, which runs the same under Ray
Train). Each rank loads the encoder, adds the target's head (seeded, untrained: evaluation costs the same)
and builds the phase's DeepSpeed engine; then, between two barriers, the phase runs on every language's
test and dev split of the miniature (the first ``--examples`` of each), reading the cached features,
predicting, gathering, decoding and scoring. Runs alternate (1 rank, 2 ranks, ``--repeats`` times) so background load hits both alike; the
table gives medians, the speed-up (1-rank seconds / 2-rank seconds), the same ratio of CPU seconds (the
1 rank's against the busiest of the 2 ranks': the share of the work the busiest rank does, which other
jobs on a shared machine disturb less than the wall time), whether the two scored alike, and a ``RESULT``
line with the smallest of each ratio.
``python benchmarks/eval_shard.py [--encoder minilm] [--targets pawsx,udpos,xquad] [--examples 64]
[--repeats 3]``.
"""

from __future__ import annotations

import os

# One thread per rank: set before anything imports torch (a spawned rank inherits the environment).
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import json
import platform
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

BATCH = 32
SEQ = 128


def config_dict(
    encoder: str, target: str, zero_stage: int, examples: int, cache: Path, out: Path
) -> dict[str, Any]:
    """The zero-shot phase's settings: every miniature language's test and dev splits (the first
    ``examples`` of each), 32-row batches."""
    return {
        "target": {"task": target, "batch_size": 8, "max_steps": 1},
        "model": {"name_or_path": encoder, "max_seq_length": SEQ, "doc_stride": 64},
        "data": {"source": "miniature", "cache_dir": str(cache), "max_eval_examples": examples},
        "deepspeed": {"zero_stage": zero_stage, "precision": "fp32"},
        "evaluation": {"batch_size": BATCH},
        "output_dir": str(out),
    }


def prepare(data: dict[str, Any]) -> int:
    """Build the miniature, the encoder and every evaluated set's features once; the examples scored."""
    from trainers.config import TransferConfig
    from trainers.data import resolve_train_task
    from trainers.encoders import resolve_encoder
    from trainers.prepare import eval_set, label_names_for, load_tokenizer
    from trainers.tasks import get_task
    from trainers.zero_shot_eval import languages

    config = TransferConfig.from_dict(data)
    task = get_task(config.target.task)
    tokenizer = load_tokenizer(resolve_encoder(config.model.name_or_path, config.data.cache_dir))
    labels = label_names_for(resolve_train_task(task), config)
    return sum(
        len(eval_set(config, task, split, lang, tokenizer, labels).examples)
        for lang in languages(config, task)
        for split in ("test", "dev")
    )


def _rank(rank: int, world: int, port: int, data: dict[str, Any], result: str) -> None:
    """One rank: build the engine, then time the zero-shot phase between two barriers."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        XSTILTS_PROGRESS_EVERY_S="3600",
    )
    import torch

    from trainers import _phase, zero_shot_eval
    from trainers.config import TransferConfig
    from trainers.data import resolve_train_task
    from trainers.encoders import resolve_encoder
    from trainers.engine import build_engine, init_distributed
    from trainers.modeling import HeadSpec
    from trainers.prepare import label_names_for
    from trainers.runtime import LocalRuntime
    from trainers.tasks import get_task

    torch.set_num_threads(1)
    config = TransferConfig.from_dict(data)
    runtime = LocalRuntime(Path(config.output_dir))
    init_distributed(runtime.device, timeout_s=300)
    task = get_task(config.target.task)
    train_task = resolve_train_task(task)
    encoder_dir = resolve_encoder(config.model.name_or_path, config.data.cache_dir)
    labels = label_names_for(train_task, config)
    model = _phase.build_model(encoder_dir, [HeadSpec(task.name, train_task.type, len(labels))], 0, 7)
    engine = build_engine(model, config.target, config.deepspeed, 1, runtime.device)
    torch.distributed.barrier()
    started, cpu_started = time.perf_counter(), time.process_time()
    metrics = zero_shot_eval.run(runtime, config, engine, encoder_dir)
    cpu_seconds = time.process_time() - cpu_started
    torch.distributed.barrier()
    seconds = time.perf_counter() - started
    scores = {k: v for k, v in metrics.items() if k.startswith(("zero_shot", "target_dev"))}
    Path(result, f"rank{rank}.json").write_text(
        json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "scores": scores})
    )
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(world: int, data: dict[str, Any], root: Path) -> dict[str, Any]:
    """The zero-shot phase on ``world`` ranks: its wall seconds, the busiest rank's CPU seconds, and rank
    0's scores."""
    import torch.multiprocessing as mp

    result = Path(tempfile.mkdtemp(dir=root))
    data = {**data, "output_dir": str(result / "out")}
    mp.start_processes(
        _rank, args=(world, _free_port(), data, str(result)), nprocs=world, start_method="spawn"
    )
    ranks = [json.loads((result / f"rank{r}.json").read_text()) for r in range(world)]
    shutil.rmtree(result, ignore_errors=True)
    return {**ranks[0], "cpu_seconds": max(r["cpu_seconds"] for r in ranks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--encoder", default="minilm", help="a built-in encoder name (tiny, minilm, me5-small)"
    )
    parser.add_argument("--targets", default="pawsx,udpos,xquad", help="comma-separated miniature targets")
    parser.add_argument("--zero-stage", type=int, default=0, choices=(0, 2, 3), help="DeepSpeed ZeRO stage")
    parser.add_argument("--examples", type=int, default=64, help="examples of each language's split")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating")
    args = parser.parse_args()
    if args.repeats < 1 or args.examples < 1:
        parser.error("--repeats and --examples must be >= 1")
    from trainers.tasks import TASKS

    unknown = [t for t in args.targets.split(",") if t not in TASKS]
    if unknown:
        parser.error(f"--targets: unknown task {', '.join(unknown)}")
    root = Path(tempfile.mkdtemp(prefix="xstilts-eval-shard-"))
    rows = []
    load_before = os.getloadavg()[0]
    try:
        for target in args.targets.split(","):
            data = config_dict(
                args.encoder, target, args.zero_stage, args.examples, root / "cache", root / "out"
            )
            examples = prepare(data)
            one, two, cpu_one, cpu_two, same = [], [], [], [], True
            for _ in range(args.repeats):
                alone, sharded = timed(1, data, root), timed(2, data, root)
                one.append(alone["seconds"])
                two.append(sharded["seconds"])
                cpu_one.append(alone["cpu_seconds"])
                cpu_two.append(sharded["cpu_seconds"])
                same = same and alone["scores"] == sharded["scores"]
            median = statistics.median
            rows.append((target, examples, median(one), median(two), median(cpu_one), median(cpu_two), same))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {args.encoder}, ZeRO "
        f"{args.zero_stage}, fp32, batches of {BATCH} x <= {SEQ} tokens, 1 thread a rank; zero-shot phase "
        f"seconds (every miniature language, test and dev, {args.examples} examples each), median of "
        f"{args.repeats}"
    )
    print(
        "| target | examples | 1 rank s | 2 ranks s | speed-up | 1 rank CPU s | busiest of 2 CPU s | "
        "CPU ratio | same scores |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for target, examples, alone, sharded, cpu_alone, cpu_sharded, same in rows:
        print(
            f"| {target} | {examples} | {alone:.2f} | {sharded:.2f} | {alone / sharded:.2f} | "
            f"{cpu_alone:.2f} | {cpu_sharded:.2f} | {cpu_alone / cpu_sharded:.2f} | {'yes' if same else 'NO'} |"
        )
    worst = min(row[2] / row[3] for row in rows)
    worst_cpu = min(row[4] / row[5] for row in rows)
    print(
        f"RESULT eval_shard_speedup_min={worst:.2f} cpu_ratio_min={worst_cpu:.2f} "
        f"same_scores={'yes' if all(row[6] for row in rows) else 'no'}"
    )


if __name__ == "__main__":
    main()
