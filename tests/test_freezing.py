"""Layer freezing, verified bit-for-bit through real DeepSpeed steps on the tiny encoder."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from trainers import _loop
from trainers._phase import build_model
from trainers.config import DeepSpeedConfig, PhaseConfig
from trainers.engine import build_engine, init_distributed
from trainers.modeling import FreezeError, HeadSpec, TransferModel, count_parameters, encoder_layers

TASK = "pawsx"
STEPS = 4  # DeepSpeed's warm-up gives the first steps a zero learning rate: take a few more


def _is_frozen_name(name: str, depth: int) -> bool:
    """Whether freeze_depth=depth should freeze the parameter called ``name`` (in a TransferModel)."""
    if depth == 0:
        return False
    if name.startswith("encoder.embeddings."):
        return True
    return any(name.startswith(f"encoder.encoder.layer.{i}.") for i in range(depth))


def _train(model: TransferModel, pawsx_batch: dict[str, Any], zero_stage: int) -> Any:
    init_distributed(torch.device("cpu"))
    phase = PhaseConfig(learning_rate=1e-2, batch_size=8, max_steps=STEPS)
    engine = build_engine(model, phase, DeepSpeedConfig(zero_stage=zero_stage), STEPS, torch.device("cpu"))
    for _ in range(STEPS):
        _loop.train_step(engine, TASK, pawsx_batch)
    return engine


@pytest.mark.parametrize("zero_stage", [0, 2])
def test_frozen_layers_are_bit_identical_after_training(
    tiny_encoder_dir: str, pawsx_heads: list[HeadSpec], pawsx_batch: dict[str, Any], zero_stage: int
) -> None:
    model = build_model(tiny_encoder_dir, pawsx_heads, freeze_depth=1, seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    engine = _train(model, pawsx_batch, zero_stage)

    after = dict(engine.module.named_parameters())
    assert set(after) == set(before)
    frozen = [name for name in before if _is_frozen_name(name, 1)]
    trained = [name for name in before if not _is_frozen_name(name, 1)]
    assert any(n.startswith("encoder.embeddings.") for n in frozen)
    assert any(n.startswith("encoder.encoder.layer.0.") for n in frozen)
    assert any(n.startswith("encoder.encoder.layer.1.") for n in trained)
    assert any(n.startswith("heads.") for n in trained)
    for name in frozen:
        assert not after[name].requires_grad, name
        assert torch.equal(after[name].detach(), before[name]), f"frozen {name} changed"
    for name in trained:
        assert after[name].requires_grad, name
        assert not torch.equal(after[name].detach(), before[name]), f"trainable {name} did not change"


def test_frozen_parameters_never_reach_the_optimizer(
    tiny_encoder_dir: str, pawsx_heads: list[HeadSpec], pawsx_batch: dict[str, Any]
) -> None:
    model = build_model(tiny_encoder_dir, pawsx_heads, freeze_depth=1, seed=0)
    engine = _train(model, pawsx_batch, zero_stage=0)
    optimizer = engine.optimizer
    in_groups = {id(p) for group in optimizer.param_groups for p in group["params"]}
    with_state = {id(p) for p in optimizer.state}
    for name, parameter in engine.module.named_parameters():
        if _is_frozen_name(name, 1):
            assert id(parameter) not in in_groups, f"frozen {name} is in the optimizer's param groups"
            assert id(parameter) not in with_state, f"frozen {name} has optimizer state"
            assert parameter.grad is None, f"frozen {name} has a gradient"
        else:
            assert id(parameter) in in_groups, f"trainable {name} is missing from the optimizer"
            assert id(parameter) in with_state, f"trainable {name} has no optimizer state"
    n_in_groups = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert n_in_groups == count_parameters(engine.module)[0]


def test_freeze_all_layers_leaves_only_heads(tiny_encoder_dir: str, pawsx_heads: list[HeadSpec]) -> None:
    model = build_model(tiny_encoder_dir, pawsx_heads, freeze_depth=2, seed=0)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.startswith("heads.") for name in trainable), trainable
    assert count_parameters(model)[0] == sum(p.numel() for p in model.heads.parameters())


def test_trainable_count_drops_monotonically_with_depth(
    tiny_encoder_dir: str, pawsx_heads: list[HeadSpec]
) -> None:
    counts = [
        count_parameters(build_model(tiny_encoder_dir, pawsx_heads, depth, seed=0)) for depth in (0, 1, 2)
    ]
    trainable = [count[0] for count in counts]
    assert trainable[0] > trainable[1] > trainable[2] > 0
    assert len({count[1] for count in counts}) == 1  # the total does not depend on freezing
    # Each extra layer frozen removes exactly that layer's parameters.
    model = build_model(tiny_encoder_dir, pawsx_heads, 0, seed=0)
    layer_1 = sum(p.numel() for p in encoder_layers(model.encoder)[1][1].parameters())
    assert trainable[1] - trainable[2] == layer_1


def test_freeze_depth_zero_freezes_nothing(tiny_encoder_dir: str, pawsx_heads: list[HeadSpec]) -> None:
    model = build_model(tiny_encoder_dir, pawsx_heads, freeze_depth=0, seed=0)
    assert all(p.requires_grad for p in model.parameters())
    trainable, total = count_parameters(model)
    assert trainable == total


def test_freeze_depth_beyond_the_encoder_raises(tiny_encoder_dir: str, pawsx_heads: list[HeadSpec]) -> None:
    with pytest.raises(FreezeError, match=r"freeze_depth must be in \[0, 2\]"):
        build_model(tiny_encoder_dir, pawsx_heads, freeze_depth=3, seed=0)
