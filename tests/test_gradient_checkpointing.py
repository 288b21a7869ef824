"""``model.gradient_checkpointing``: the same loss and gradients as without it (frozen bottom layers and the
T5 stack too), each trained layer really recomputed in the backward, frozen ones not, a lower memory plan,
the same intermediate-checkpoint key, and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainers._phase import build_model
from trainers.checkpoint_cache import intermediate_key
from trainers.config import ConfigError, TransferConfig
from trainers.encoders import resolve_encoder
from trainers.memory import ENCODER_SHAPES, MemoryPlanError, check_fits, memory_plan
from trainers.modeling import CheckpointingError, HeadSpec, checkpoint_activations, encoder_layers
from trainers.tasks import TaskType


def _step(
    encoder_dir: str, freeze_depth: int, checkpointing: bool, calls: list[int]
) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and gradients of one training step on a fixed batch; ``calls``: each layer's forward calls."""
    model = build_model(
        encoder_dir, [HeadSpec("xnli", TaskType.PAIR_CLASSIFICATION, 3)], freeze_depth, 0, checkpointing
    )
    model.train()
    layers = encoder_layers(model.encoder)[1]
    calls[:] = [0] * len(layers)
    for index, layer in enumerate(layers):
        # On the layer's first projection: transformers checkpoints a layer's forward, not its own hooks,
        # and the recomputation stops once it has what the backward needs (torch's default).
        first = next(module for module in layer.modules() if isinstance(module, torch.nn.Linear))
        first.register_forward_pre_hook(lambda *_, i=index: calls.__setitem__(i, calls[i] + 1))
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (4, 24), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 2, 1])}
    torch.manual_seed(2)  # the same dropout masks in both runs (checkpointing replays the RNG state)
    loss, _ = model("xnli", batch)
    assert loss is not None
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


@pytest.mark.parametrize("encoder", ["tiny", "tiny-t5"])
@pytest.mark.parametrize("freeze_depth", [0, 1])
def test_same_loss_and_gradients_with_each_trained_layer_recomputed(
    cache_dir: Path, encoder: str, freeze_depth: int
) -> None:
    encoder_dir = resolve_encoder(encoder, cache_dir)
    plain_calls: list[int] = []
    checkpointed_calls: list[int] = []
    loss, grads = _step(encoder_dir, freeze_depth, False, plain_calls)
    loss_ckpt, grads_ckpt = _step(encoder_dir, freeze_depth, True, checkpointed_calls)
    assert loss_ckpt == pytest.approx(loss, rel=1e-6)
    assert grads_ckpt.keys() == grads.keys()
    if freeze_depth:  # the frozen embeddings get no gradient either way
        assert not any(name.startswith(("encoder.embeddings.", "encoder.shared.")) for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7)
    # Without checkpointing every layer runs once; with it, a trained layer runs again in the backward and a
    # frozen one (nothing below it needs a gradient) does not.
    assert plain_calls == [1, 1]
    assert checkpointed_calls == [1 if index < freeze_depth else 2 for index in range(2)]


def test_checkpointing_leaves_the_input_embeddings_without_a_gradient(cache_dir: Path) -> None:
    # transformers' enable_input_require_grads would make frozen layers run a backward: it is undone.
    model = build_model(
        resolve_encoder("tiny", cache_dir), [HeadSpec("xnli", TaskType.PAIR_CLASSIFICATION, 3)], 1, 0, True
    )
    ids = torch.randint(5, 300, (2, 16))
    encoder: Any = model.encoder
    embedded = encoder.get_input_embeddings()(ids)
    assert not embedded.requires_grad


def test_an_encoder_that_cannot_checkpoint_is_one_line() -> None:
    with pytest.raises(CheckpointingError, match=r"^model\.gradient_checkpointing: Linear cannot .*false$"):
        checkpoint_activations(torch.nn.Linear(2, 2))


def _config(model: str, checkpointing: Any, **target: Any) -> TransferConfig:
    return TransferConfig.from_dict(
        {
            "model": {
                "name_or_path": model,
                "max_seq_length": 256,
                "doc_stride": 128,
                "gradient_checkpointing": checkpointing,
            },
            "intermediate": {"tasks": ["mnli"], "batch_size": 8},
            "target": {"task": "udpos", "batch_size": 8, **target},
            "deepspeed": {"precision": "bf16"},
            "scaling": {"use_gpu": True},
        }
    )


def test_a_config_value_that_is_not_a_boolean_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"model\.gradient_checkpointing.*must be true or false, got 'yes'"):
        _config("tiny", "yes")


def test_the_intermediate_checkpoint_key_does_not_change() -> None:
    assert intermediate_key(_config("tiny", True)) == intermediate_key(_config("tiny", False))


@pytest.mark.parametrize("model", ["xlm-roberta-large", "google/mt5-xl"])
def test_the_plan_keeps_each_trained_layers_input_and_one_layer(model: str) -> None:
    shape = ENCODER_SHAPES[model.rsplit("/", 1)[-1]]
    plain = _config(model, False, freeze_depth=4)
    checkpointed = _config(model, True, freeze_depth=4)
    before = memory_plan(plain, plain.target, ["udpos"])
    after = memory_plan(checkpointed, checkpointed.target, ["udpos"])
    assert before is not None and after is not None and after.checkpointing
    # bf16 on GPU, 8 x 256 tokens: 20 trained layers' inputs (2 s b h bytes each) plus one layer's activations.
    sbh = 8 * 256 * shape.hidden
    one_layer = shape.layer_activation_bytes(8, 256, 2, 1)
    extra_t5 = 2 * shape.heads * 256 * 256 * 8 if shape.family == "t5" else 0
    # The embeddings and the final RMSNorm are outside the layers and count as before.
    outside = before.activations - 20 * one_layer
    assert after.activations == 20 * 2 * sbh + one_layer + extra_t5 + outside
    assert after.activations < before.activations / 4
    assert (after.parameters, after.gradients, after.optimizer) == (
        before.parameters,
        before.gradients,
        before.optimizer,
    )


def test_a_plan_that_does_not_fit_suggests_checkpointing_until_it_is_on() -> None:
    config = _config("xlm-roberta-large", False, batch_size=256)
    plan = memory_plan(config, config.target, ["udpos"])
    assert plan is not None
    with pytest.raises(MemoryPlanError, match=r"set model\.gradient_checkpointing"):
        check_fits(plan, "target", 40 * 1024**3, "A100 40GB")
    config = _config("xlm-roberta-large", True, batch_size=4096)
    plan = memory_plan(config, config.target, ["udpos"])
    assert plan is not None
    with pytest.raises(MemoryPlanError) as error:
        check_fits(plan, "target", 40 * 1024**3, "A100 40GB")
    assert "gradient_checkpointing" not in str(error.value)
