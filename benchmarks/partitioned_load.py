"""Host memory of loading an encoder on several ranks: whole (each rank builds and reads all of it) against
partitioned under ZeRO 3 (``build_model`` with a stage-3 engine config: ``zero.Init``, rank 0 alone reads).

Ranks are CPU processes in one gloo group (``torch.multiprocessing``), one thread each. Each rank's figures
are the growth of its peak resident set (``trainers/peak_memory.py``'s measure: the peak reset just before,
minus the resident set then; imports and the process group left out) to the end of ``build_model`` and to
the end of the ZeRO-3 engine's start, which both ways reach before training. A whole load's weights are the
checkpoint file's pages, mapped, which count once they are read.

    python benchmarks/partitioned_load.py [--ranks 2] [--model xlm-roberta-base-random]

The default model is XLM-R base's shape with random weights (278M parameters, 1.1 GB in fp32), built once
into a temporary directory; any built-in name or local directory works too.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

RANDOM_BASE = "xlm-roberta-base-random"
"""The default ``--model``: XLM-R base's shape, random weights (as benchmarks/gpu_check.py builds it)."""


def _rank(rank: int, world: int, port: int, path: str, partitioned: bool, results: Any) -> None:
    """One rank: join the group, then build the model whole or partitioned and report its memory growth."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    from freeze import HEAD

    from trainers import engine, keys
    from trainers._phase import build_model
    from trainers.config import DeepSpeedConfig, PhaseConfig
    from trainers.modeling import count_parameters
    from trainers.peak_memory import PhasePeakMemory

    cpu = torch.device("cpu")
    engine.init_distributed(cpu)
    phase = PhaseConfig(learning_rate=1e-5, batch_size=8)
    config = (
        engine.deepspeed_config(phase, DeepSpeedConfig(zero_stage=3), 10, world, cpu) if partitioned else None
    )
    key = keys.MEMORY_RSS_PEAK_MIB.format(phase="load")
    torch.distributed.barrier()
    measure = PhasePeakMemory(cpu)
    before = measure.metrics("load")[key]  # right after the reset: the resident set now
    model = build_model(path, [HEAD], 0, 0, engine_config=config)
    loaded = measure.metrics("load")[key]
    # What this rank holds: a partitioned parameter's share is its ds_tensor (its own tensor is empty).
    local = sum(getattr(p, "ds_tensor", p).numel() * p.element_size() for p in model.parameters())
    eng = engine.build_engine(model, phase, DeepSpeedConfig(zero_stage=3), 10, cpu)
    ready = measure.metrics("load")[key]
    results.put((rank, loaded - before, ready - before, local / 2**20, count_parameters(eng.module)[1]))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(path: str, world: int, partitioned: bool) -> list[tuple[int, float, float, float, int]]:
    """Each rank's (rank, peak growth MiB loading, and to a ZeRO-3 engine, parameter MiB it holds once
    loaded, parameters counted whole), by rank."""
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(
        _rank, args=(world, _free_port(), path, partitioned, results), nprocs=world, start_method="spawn"
    )
    return sorted(results.get() for _ in range(world))


def main() -> None:
    """Load whole, then partitioned, and print one row per rank and way."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--model", default=RANDOM_BASE, help=f"{RANDOM_BASE}, a built-in name or a directory")
    parser.add_argument("--cache-dir", default="~/.cache/xstilts")
    args = parser.parse_args()
    from gpu_check import _random_xlmr_base

    from trainers.encoders import resolve_encoder

    with tempfile.TemporaryDirectory(prefix="partitioned-load-") as scratch:
        if args.model == RANDOM_BASE:
            path = _random_xlmr_base(Path(scratch) / "xlm-roberta-base")
        else:
            path = resolve_encoder(args.model, args.cache_dir)
        rows = [(way, measure(path, args.ranks, way == "partitioned")) for way in ("whole", "partitioned")]
    print(f"{args.model}, {args.ranks} gloo ranks on CPU, fp32: peak resident-set growth (MiB) from before")
    print("build_model to its end (loaded) and to the end of the ZeRO-3 engine's start (ready)")
    print(f"{'load':<12}{'rank':>5}{'loaded':>9}{'ready':>9}{'params held MiB':>17}{'params (whole)':>16}")
    for way, ranks in rows:
        for rank, loaded, ready, held, counted in ranks:
            print(f"{way:<12}{rank:>5}{loaded:>9.0f}{ready:>9.0f}{held:>17.0f}{counted:>16,}")


if __name__ == "__main__":
    main()
