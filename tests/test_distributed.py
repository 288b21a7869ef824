"""Data-parallel DeepSpeed ZeRO runs: 2 CPU workers through Ray Train (ZeRO-2), and ZeRO-3 in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from studies import PROCESS_GROUP_ENV

from trainers.checkpoint_cache import CheckpointCache, intermediate_key
from trainers.worker import Plan, run_local


@pytest.fixture
def local_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh 2-CPU Ray instance of our own (never another process's cluster), shut down afterwards."""
    ray = pytest.importorskip("ray")
    for name in (*PROCESS_GROUP_ENV, "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)  # workers inherit the driver's environment
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_two_workers_zero2_through_ray_train(local_ray: Any, tiny_config: Any, tmp_path: Path) -> None:
    from search.run import run_transfer

    config = tiny_config(
        tmp_path / "run",
        "pawsx",
        ["qqp"],
        [
            "scaling.num_workers=2",
            "scaling.cpus_per_worker=0.5",
            "deepspeed.zero_stage=2",
            "target.max_steps=4",
            "target.checkpoint_every=2",
            "intermediate.max_steps=3",
        ],
    )
    storage = tmp_path / "ray-storage"

    metrics = run_transfer(config, backend="ray", storage_path=str(storage))

    assert metrics["finished"] == 1.0
    for lang in ("en", "de", "es"):
        assert 0.0 <= metrics[f"zero_shot/{lang}"] <= 100.0
    assert 0.0 <= metrics["en_dev"] <= 100.0
    assert metrics["time/startup_s"] > 0
    assert metrics["target_step"] == 4 and metrics["intermediate/step"] == 3
    # Two ranks really trained under ZeRO-2: the step-2 checkpoint in Ray storage holds both ranks'
    # optimizer-state partitions (each rank reports its own files; Ray Train merges them).
    states = {path.parent: json.loads(path.read_text()) for path in storage.rglob("checkpoint_*/state.json")}
    (step_2,) = [path for path, state in states.items() if state == {"phase": "target", "step": 2}]
    shards = sorted(p.name for p in (step_2 / "engine").glob("*optim_states.pt"))
    assert shards == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]
    assert {
        "phase": "done"
    } in states.values()  # the final checkpoint, which run_transfer read the results from
    # Phase 1 published its encoder to the shared cache, keyed with the global batch of 2 workers.
    entry = CheckpointCache(Plan.for_config(config).cache_root).lookup(intermediate_key(config))
    assert entry is not None
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["key_fields"]["global_batch_size"] == 2 * config.intermediate.batch_size


def test_zero3_in_process(tiny_config: Any, tmp_path: Path) -> None:
    """ZeRO-3 (parameters partitioned) runs all phases on one rank; the encoder is gathered to publish."""
    config = tiny_config(tmp_path / "run", "udpos", ["sst2"], ["deepspeed.zero_stage=3", "seed=3"])
    cache_root = tmp_path / "intermediate-cache"
    metrics = run_local(Plan(config, cache_root=str(cache_root)))
    assert metrics["finished"] == 1.0
    assert {f"zero_shot/{lang}" for lang in ("en", "de", "es", "ru")} <= set(metrics)
    assert 0.0 <= metrics["en_dev"] <= 100.0
    entry = CheckpointCache(cache_root).lookup(intermediate_key(config))
    assert entry is not None
    # The published encoder holds full (gathered) weights, not ZeRO-3's empty placeholders.
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(entry)
    assert all(p.numel() > 0 for p in encoder.parameters())
    assert encoder.embeddings.word_embeddings.weight.shape[1] == 64


@pytest.mark.parametrize(("cpus", "threads"), [(0.5, 1), (0.95, 1), (1.9, 2), (4.0, 4)])
def test_a_ray_worker_computes_on_the_cpus_it_reserved(cpus: float, threads: int) -> None:
    import torch

    from trainers.worker import use_reserved_cpus

    before = torch.get_num_threads()
    try:
        assert use_reserved_cpus(cpus) == threads
        assert torch.get_num_threads() == threads  # Ray's OMP_NUM_THREADS, floor(1.9) = 1, no longer binds
    finally:
        torch.set_num_threads(before)
