"""Under ZeRO-3 the encoder loads partitioned (DeepSpeed's ``zero.Init`` through transformers'
``HfDeepSpeedConfig``): no rank holds the whole model before the engine exists. On the tiny encoder, one gloo
rank in this process: the weights come out partitioned at load time with the checkpoint's values, freezing and
parameter counts see them whole, and training from such a load, and resuming it, gives what training from a
whole load gave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers import _loop, engine
from trainers._phase import build_model
from trainers.config import DeepSpeedConfig, PhaseConfig
from trainers.data import collate
from trainers.modeling import HeadSpec, TransferModel, count_parameters
from trainers.prepare import label_names_for, load_tokenizer, train_features
from trainers.tasks import get_task

TASK = "pawsx"
STEPS = 4
CPU = torch.device("cpu")
PHASE = PhaseConfig(learning_rate=1e-2, batch_size=8, max_steps=STEPS)
ZERO3 = DeepSpeedConfig(zero_stage=3)


def _zero3_config() -> dict[str, Any]:
    engine.init_distributed(CPU)
    return engine.deepspeed_config(PHASE, ZERO3, STEPS, 1, CPU)


def _partitioned(model: TransferModel) -> list[str]:
    """Names of the parameters that ZeRO-3 holds partitioned (an empty local tensor, the rest elsewhere)."""
    return [name for name, p in model.named_parameters() if hasattr(p, "ds_id") and p.numel() == 0]


def test_zero3_loads_the_encoder_partitioned_with_the_checkpoints_values(
    tiny_encoder_dir: str, pawsx_heads: list[HeadSpec]
) -> None:
    import deepspeed
    from transformers.integrations import is_deepspeed_zero3_enabled

    model = build_model(tiny_encoder_dir, pawsx_heads, freeze_depth=1, seed=0, engine_config=_zero3_config())
    whole = build_model(tiny_encoder_dir, pawsx_heads, freeze_depth=1, seed=0)

    # Every encoder weight is partitioned before any engine exists; the pawsx_heads, made after, are not (yet).
    encoder_names = [f"encoder.{name}" for name, _ in model.encoder.named_parameters()]
    assert _partitioned(model) == encoder_names
    assert not _partitioned(whole)
    assert not is_deepspeed_zero3_enabled()  # the next load is a plain one again
    # Counting and freezing see the whole parameters.
    assert count_parameters(model) == count_parameters(whole)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, p in whole.named_parameters() if p.requires_grad}
    assert not any(name.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.")) for name in trainable)
    # Gathered, the partitions hold the checkpoint's values (rank 0 read them and scattered them).
    with deepspeed.zero.GatheredParameters(list(model.encoder.parameters())):
        for (name, gathered), (_, expected) in zip(
            model.encoder.named_parameters(), whole.encoder.named_parameters(), strict=True
        ):
            assert torch.equal(gathered, expected), name
    for (name, head), (_, expected) in zip(
        model.heads.named_parameters(), whole.heads.named_parameters(), strict=True
    ):
        assert torch.equal(head, expected), name


def _step(eng: Any, task: str, pawsx_batch: dict[str, Any], step: int) -> float:
    """One training step whose dropout draws depend on ``step`` alone (a resumed run draws what it would have)."""
    torch.manual_seed(1000 + step)
    return float(_loop.train_step(eng, task, pawsx_batch))


def _train(
    model: TransferModel,
    pawsx_batch: dict[str, Any],
    steps: range,
    resume: Path | None = None,
    task: str = TASK,
) -> tuple[Any, list[float]]:
    """A ZeRO-3 engine on ``model`` (resumed from ``resume``), and its losses over ``steps``."""
    eng = engine.build_engine(model, PHASE, ZERO3, STEPS, CPU)
    if resume is not None:
        engine.load_checkpoint(eng, resume)
    return eng, [_step(eng, task, pawsx_batch, step) for step in steps]


def test_training_from_a_partitioned_load_and_resuming_it_match_a_whole_load(
    tiny_encoder_dir: str, pawsx_heads: list[HeadSpec], pawsx_batch: dict[str, Any], tmp_path: Path
) -> None:
    config = _zero3_config()
    _, before = _train(build_model(tiny_encoder_dir, pawsx_heads, 1, seed=0), pawsx_batch, range(STEPS))

    partitioned, first = _train(
        build_model(tiny_encoder_dir, pawsx_heads, 1, seed=0, engine_config=config), pawsx_batch, range(2)
    )
    engine.save_checkpoint(partitioned, tmp_path / "step2", {"step": 2})
    first += [_step(partitioned, TASK, pawsx_batch, step) for step in range(2, STEPS)]
    weights = engine.full_state_dict(partitioned)
    resumed_model = build_model(tiny_encoder_dir, pawsx_heads, 1, seed=0, engine_config=config)
    resumed, rest = _train(resumed_model, pawsx_batch, range(2, STEPS), resume=tmp_path / "step2")

    assert first == before  # the same losses as training from a whole load (the path before)
    assert first[2:] == rest  # resumed from step 2: the same last steps
    resumed_weights = engine.full_state_dict(resumed)
    assert resumed_weights.keys() == weights.keys()
    for name, value in weights.items():
        assert torch.equal(resumed_weights[name], value), name


def test_a_masked_lm_head_tied_to_a_partitioned_encoder_trains_as_on_a_whole_one(
    tiny_encoder_dir: str, tiny_config: Any, tmp_path: Path
) -> None:
    task = get_task("mlm_multilingual")
    config = tiny_config(tmp_path / "unused-output", "xnli", [task.name])
    tokenizer = load_tokenizer(tiny_encoder_dir)
    features = train_features(config, task, tokenizer, label_names_for(task, config))
    pawsx_batch = collate([features[i] for i in range(8)], tokenizer.pad_token_id)
    pawsx_heads = [HeadSpec.of(task)]
    partitioned = build_model(tiny_encoder_dir, pawsx_heads, 0, seed=0, engine_config=_zero3_config())
    whole = build_model(tiny_encoder_dir, pawsx_heads, 0, seed=0)

    # The head reads the vocabulary from the partitioned embedding's whole shape, and shares that weight.
    head: Any = partitioned.heads[task.name]
    assert head.vocab_size == whole.heads[task.name].vocab_size == len(tokenizer)
    encoder: Any = partitioned.encoder
    assert head.decoder.weight is encoder.get_input_embeddings().weight
    _, losses = _train(partitioned, pawsx_batch, range(STEPS), task=task.name)
    _, expected = _train(whole, pawsx_batch, range(STEPS), task=task.name)
    assert losses == expected
