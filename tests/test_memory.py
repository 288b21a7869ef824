"""The memory plan (trainers/memory.py): ZeRO accounting by hand, and the estimate against what a tiny
XLM-R-shaped encoder really holds on CPU (parameters, gradients and AdamW state after a step, plus the
tensors its forward pass saves for backward, measured with autograd's saved-tensor hooks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainers.config import TransferConfig
from trainers.memory import ENCODER_SHAPES, MemoryPlanError, check_fits, memory_plan

REPO = Path(__file__).resolve().parent.parent


def _config(model: str = "tiny", seq: int = 64, **sections: Any) -> TransferConfig:
    data: dict[str, Any] = {
        "model": {"name_or_path": model, "max_seq_length": seq, "doc_stride": seq // 2},
        "target": {"task": "udpos", "batch_size": 16},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return TransferConfig.from_dict(data)


def test_xlmr_large_parameter_count_matches_the_published_one() -> None:
    # 559,890,432 (XLMRobertaModel with its pooler) minus the pooler's 1024 x 1024 + 1024.
    assert ENCODER_SHAPES["xlm-roberta-large"].parameters == 559_890_432 - (1024 * 1024 + 1024)


def test_zero_stages_and_offload_by_hand() -> None:
    psi = ENCODER_SHAPES["xlm-roberta-large"].parameters
    large = {"model": "xlm-roberta-large", "seq": 256}
    scaling = {"num_workers": 4, "use_gpu": True}
    plan = memory_plan(
        config := _config(**large, deepspeed={"zero_stage": 2, "precision": "bf16"}, scaling=scaling),
        config.target,
        ["udpos"],
    )
    assert plan is not None
    assert (plan.parameters, plan.gradients, plan.optimizer) == (2 * psi, 2 * psi / 4, 12 * psi / 4)
    plan = memory_plan(
        config := _config(**large, deepspeed={"zero_stage": 3, "precision": "bf16"}, scaling=scaling),
        config.target,
        ["udpos"],
    )
    assert plan is not None and plan.parameters == 2 * psi / 4
    plan = memory_plan(
        config := _config(
            **large,
            deepspeed={"zero_stage": 1, "offload_optimizer": True, "precision": "bf16"},
            scaling=scaling,
        ),
        config.target,
        ["udpos"],
    )
    assert plan is not None and plan.optimizer == 0 and plan.gradients == 2 * psi
    plan = memory_plan(config := _config(**large, deepspeed={"precision": "fp32"}), config.target, ["udpos"])
    assert plan is not None and (plan.parameters, plan.optimizer) == (4 * psi, 8 * psi)


def test_activations_of_frozen_xlmr_large_by_hand() -> None:
    # bf16 on GPU, batch 8 x 256 tokens: 34 s b h + 5 a s^2 b = 71,303,168 + 41,943,040 bytes per layer
    # (Korthikanti et al. 2022); freezing 12 of 24 layers leaves 12 that save anything.
    config = _config(
        "xlm-roberta-large",
        256,
        target={"batch_size": 8, "freeze_depth": 12},
        deepspeed={"precision": "bf16"},
        scaling={"use_gpu": True},
    )
    plan = memory_plan(config, config.target, ["udpos"])
    assert plan is not None and plan.activations == 12 * (71_303_168 + 41_943_040)


def test_a_plan_that_does_not_fit_names_what_to_change() -> None:
    config = _config("xlm-roberta-large", 512, target={"batch_size": 512}, scaling={"use_gpu": True})
    plan = memory_plan(config, config.target, ["udpos"])
    assert plan is not None
    with pytest.raises(MemoryPlanError, match=r"lower target\.batch_size .*raise deepspeed\.zero_stage"):
        check_fits(plan, "target", 80 * 1024**3, "A100")
    check_fits(plan, "target", plan.total, "a GPU just big enough")


@pytest.mark.parametrize("freeze_depth", [0, 1])
def test_the_plan_is_within_20_percent_of_a_tiny_encoders_measured_memory_on_cpu(freeze_depth: int) -> None:
    torch = pytest.importorskip("torch")
    from transformers import XLMRobertaModel

    from trainers.encoders import shape_config
    from trainers.modeling import freeze_bottom
    from trainers.peak_memory import one_step_bytes

    shape = ENCODER_SHAPES["tiny"]
    batch, seq = 16, 64
    config = _config(seq=seq, target={"batch_size": batch, "freeze_depth": freeze_depth})
    plan = memory_plan(config, config.target, ["udpos"], device="cpu")
    assert plan is not None
    torch.manual_seed(0)
    model = XLMRobertaModel(
        shape_config(shape),
        add_pooling_layer=False,
    )
    freeze_bottom(model, freeze_depth)
    activations, measured_static = one_step_bytes(model, shape.vocab, batch, seq)
    assert plan.parameters + plan.gradients + plan.optimizer == pytest.approx(measured_static, rel=0.01)
    assert plan.activations == pytest.approx(activations, rel=0.20)
    assert plan.total == pytest.approx(measured_static + activations, rel=0.20)


def test_dry_run_refuses_a_space_whose_largest_trial_does_not_fit(tmp_path: Path) -> None:
    text = (REPO / "spaces/xtreme.yaml").read_text()
    assert "target.batch_size: {type: categorical, choices: [4, 8, 16]" in text
    space = tmp_path / "huge.yaml"
    space.write_text(text.replace("choices: [4, 8, 16]", "choices: [4, 8, 1024]"))
    result = subprocess.run(
        [sys.executable, "-m", "search.cli", "search", "--space", str(space), "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("xstilts: error: the target phase of ")
    assert "target.batch_size=1024" in result.stderr and "lower target.batch_size" in result.stderr
