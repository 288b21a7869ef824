"""Zero-shot evaluation sharded across ranks: each rank predicts its share of the batches, rank 0 scores.

The 2-rank tests start two processes of a gloo group directly (no Ray: the sharding is in
``trainers.evaluation`` and ``trainers.zero_shot_eval``, which run the same under Ray Train), build the
phase's DeepSpeed engine on the tiny encoder in each, and run the zero-shot phase twice on the same model:
once as one rank would (every rank evaluating everything, as before sharding) and once sharded.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch

from trainers.config import TransferConfig, apply_overrides

SHARD_TARGETS = ("pawsx", "udpos", "xquad")
"""A classification, a tagging and a QA target of the miniature."""


class CountingModel:
    """A stand-in engine: the batch's first token id per row, as a one-hot over 8 classes; counts forwards."""

    def __init__(self) -> None:
        self.forwards = 0
        self.sizes: list[int] = []

    def eval(self) -> None:
        """Nothing to switch."""

    def __call__(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[None, torch.Tensor]:
        self.forwards += 1
        self.sizes.append(len(batch["input_ids"]))
        first = batch["input_ids"][:, 0] % 8
        return None, torch.nn.functional.one_hot(first, 8).float()


@pytest.mark.parametrize(("rows", "batch_size"), [(23, 5), (20, 5), (3, 5), (0, 5)])
def test_every_rank_runs_as_many_forwards_and_the_shards_cover_every_batch_once(
    rows: int, batch_size: int
) -> None:
    from trainers.evaluation import _outputs

    features = datasets.Dataset.from_dict(
        {"input_ids": [[i, 1, 2] for i in range(rows)], "attention_mask": [[1, 1, 1]] * rows}
    )
    device = torch.device("cpu")
    whole = _outputs(CountingModel(), "t", features, batch_size, 0, device)
    world = 2
    models = [CountingModel() for _ in range(world)]
    shards = [_outputs(models[r], "t", features, batch_size, 0, device, r, world) for r in range(world)]
    batches = -(-rows // batch_size)
    # ZeRO-3: every forward is a collective, so each rank runs the same number, padding included.
    assert [m.forwards for m in models] == [-(-batches // world)] * world
    assert sum(len(s) for s in shards) == batches  # the padding passes' outputs are dropped
    if batches % world:  # rank 1 pads with the last batch, the smallest (23 rows: 3 of them)
        assert models[1].sizes[-1] == rows - (batches - 1) * batch_size
    # Round robin: batch b is rank b % world's (b // world)-th, and put back together it is the whole.
    rebuilt = [shards[b % world][b // world] for b in range(batches)]
    assert len(rebuilt) == len(whole)
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt, whole, strict=True))


@dataclass
class _Runtime:
    """One rank of the group, reporting nowhere; ``world_size`` 1 evaluates as an unsharded rank does."""

    rank: int
    world_size: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """Progress reports are dropped."""

    def latest_checkpoint(self) -> Path | None:
        """None."""
        return None

    def scratch_dir(self) -> Path:
        """Not used."""
        raise NotImplementedError


class _Counting:
    """The engine, with its forward passes counted."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.forwards = engine, 0

    def eval(self) -> None:
        """The engine's."""
        self.engine.eval()

    def __call__(self, task: str, batch: dict[str, torch.Tensor]) -> Any:
        self.forwards += 1
        return self.engine(task, batch)


def _rank(rank: int, world: int, port: int, configs: list[dict[str, Any]], out: str) -> None:
    """One rank: for each config, evaluate unsharded then sharded; write what each gave to ``out``."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    os.environ["XSTILTS_PROGRESS_EVERY_S"] = "3600"
    torch.set_num_threads(1)
    from trainers import _phase, zero_shot_eval
    from trainers.data import resolve_train_task
    from trainers.encoders import resolve_encoder
    from trainers.engine import build_engine, init_distributed
    from trainers.evaluation import evaluate
    from trainers.modeling import HeadSpec
    from trainers.prepare import eval_set, label_names_for, load_tokenizer
    from trainers.tasks import TaskType, get_task

    device = torch.device("cpu")
    init_distributed(device, timeout_s=120)
    results = []
    for data in configs:
        config = TransferConfig.from_dict(data)
        task = get_task(config.target.task)
        train_task = resolve_train_task(task)
        encoder_dir = resolve_encoder(config.model.name_or_path, config.data.cache_dir)
        labels = label_names_for(train_task, config)
        model = _phase.build_model(encoder_dir, [HeadSpec(task.name, train_task.type, len(labels))], 0, 7)
        engine = _Counting(build_engine(model, config.target, config.deepspeed, 1, device))
        result: dict[str, Any] = {}
        # Unsharded, every rank runs as a rank 0 of 1 (as every rank did before sharding), in its own directory.
        runs = (
            ("whole", _Runtime(0, 1), f"whole-{rank}" if rank else "whole"),
            ("sharded", _Runtime(rank, world), "sharded"),
        )
        for name, runtime, directory in runs:
            engine.forwards = 0
            run_config = TransferConfig.from_dict(
                {**data, "output_dir": str(Path(data["output_dir"]) / directory)}
            )
            scores = zero_shot_eval.run(runtime, run_config, engine, encoder_dir)
            result[name] = {
                "scores": {k: v for k, v in scores.items() if not k.startswith("time/")},
                "forwards": engine.forwards,
            }
        if train_task.type is TaskType.PAIR_CLASSIFICATION:
            # Rank 0 fails to decode (a label the names lack): every rank raises, none waits for scores.
            tokenizer = load_tokenizer(encoder_dir)
            data_set = eval_set(config, task, "dev", "en", tokenizer, labels)
            pad = tokenizer.pad_token_id
            try:
                evaluate(engine, task.name, data_set, ("none",), 5, pad, device, rank=rank, world_size=world)
            except ValueError as error:
                result["error"] = f"{type(error).__name__}: {error}"
        results.append(result)
    Path(out, f"rank{rank}.json").write_text(json.dumps(results))
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _two_ranks(configs: list[dict[str, Any]], out: Path, timeout_s: float) -> list[list[dict[str, Any]]]:
    """Run ``_rank`` in two processes; fail (rather than hang) if they do not finish in ``timeout_s``."""
    import torch.multiprocessing as mp

    context = mp.start_processes(
        _rank, args=(2, _free_port(), configs, str(out)), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(
                f"the 2-rank evaluation did not finish within {timeout_s:.0f} s: a rank waits on a collective"
            )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _config(cache_dir: Path, out: Path, target: str, overrides: list[str]) -> dict[str, Any]:
    from conftest import base_config

    data = apply_overrides(base_config(cache_dir, out, target, None), overrides)
    TransferConfig.from_dict(data)  # valid before it goes to the ranks
    return data


def _predictions(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "predictions" in path.parts
    }


@pytest.mark.slow
def test_two_ranks_score_as_one_rank_does(cache_dir: Path, tmp_path: Path) -> None:
    """A classification, a tagging and a QA target (ZeRO-0), each scored unsharded and on two ranks.

    5-row batches: 24 examples are 5 batches, 3 on rank 0 and 2 (and one padding pass) on rank 1; a QA
    example's windows can fall in two batches, on two ranks. 33 s at load average 3 (51 s at 7.6): one
    start of two processes (imports, process group) for the three targets, each a DeepSpeed engine and
    four languages' test and dev sets twice.
    """
    overrides = ["evaluation.batch_size=5", "evaluation.write_predictions=true", "deepspeed.zero_stage=0"]
    configs = [_config(cache_dir, tmp_path / target, target, overrides) for target in SHARD_TARGETS]
    ranks = _two_ranks(configs, tmp_path, timeout_s=300)
    for target, rank0, rank1 in zip(SHARD_TARGETS, *ranks, strict=True):
        whole, sharded = rank0["whole"], rank0["sharded"]
        assert any(k.startswith("zero_shot/") for k in whole["scores"]), target
        assert sharded["scores"] == whole["scores"], target
        assert rank1["sharded"]["scores"] == whole["scores"], target  # every rank returns rank 0's scores
        # Each rank ran half the forwards, rounded up per evaluated set (its share, padded to agree).
        sets = sum(
            k.count("/") == 1 and k.split("/")[0] in ("zero_shot", "target_dev") for k in whole["scores"]
        )
        forwards = rank0["sharded"]["forwards"]
        assert forwards == rank1["sharded"]["forwards"], target
        assert whole["forwards"] <= 2 * forwards <= whole["forwards"] + sets, target
        # The prediction files, written once by rank 0, hold every example as the unsharded run's do.
        files = _predictions(tmp_path / target / "whole")
        assert files and _predictions(tmp_path / target / "sharded") == files, target
    # Rank 0's failure to score reached rank 1 too (as the same error), rather than leaving it waiting.
    assert "not in" in ranks[0][0]["error"] and ranks[1][0]["error"] == ranks[0][0]["error"]
    # The untrained model's tags and answers differ between examples, so the files test the order of the
    # gathered batches (its pair classifier says "paraphrase" to all 24: that target checks counts alone).
    for text in _predictions(tmp_path / "udpos" / "whole").values():
        assert len(set(text.split())) > 3  # tags
    for text in _predictions(tmp_path / "xquad" / "whole").values():
        assert len(set(json.loads(text).values())) > 3  # answers


@pytest.mark.slow
@pytest.mark.soak  # ZeRO-3 on two gloo ranks: CI runs the padding rule's fast cases and the 2-rank scores
def test_zero3_two_ranks_with_uneven_shards_do_not_hang(cache_dir: Path, tmp_path: Path) -> None:
    """Under ZeRO-3 every forward gathers parameters from both ranks: uneven shards (5 batches, and 1 batch
    that rank 1 has no part of) must still give both ranks the same number of forwards. Two languages'
    dev sets (ZeRO-3's gathers make each forward slow on CPU): 25 s at load average 3 on 2 shared cores
    (127 s at 11), two processes' start and two ZeRO-3 engines included."""
    overrides = ["evaluation.languages=[en, de]", "evaluation.split=dev", "deepspeed.zero_stage=3"]
    configs = [
        _config(
            cache_dir, tmp_path / f"udpos-{batch}", "udpos", [*overrides, f"evaluation.batch_size={batch}"]
        )
        for batch in (5, 32)
    ]
    ranks = _two_ranks(configs, tmp_path, timeout_s=300)
    for rank0, rank1 in zip(*ranks, strict=True):
        assert "zero_shot/de" in rank0["whole"]["scores"]
        assert rank0["sharded"]["scores"] == rank0["whole"]["scores"] == rank1["sharded"]["scores"]
        assert rank0["sharded"]["forwards"] == rank1["sharded"]["forwards"]
    # 5 batches a language: 3 forwards a rank instead of 5; 1 batch: 1 a rank, rank 1's the padding pass.
    assert [(r["sharded"]["forwards"], r["whole"]["forwards"]) for r in ranks[0]] == [(6, 10), (2, 2)]
