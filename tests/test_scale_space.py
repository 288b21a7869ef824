"""spaces/scale.yaml: every encoder's configuration has the engine settings its header gives it and a memory
plan within half of the GPU; the dry run passes, and the same space on fewer GPUs, or without its per-encoder
settings, is refused in one line naming what to change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from search.costs import dry_run
from search.space import Param, SearchSpace, load_space, space_from_dict
from trainers.config import PhaseConfig, TransferConfig
from trainers.memory import GIB, MemoryPlanError, memory_plan

REPO = Path(__file__).resolve().parent.parent
SCALE = REPO / "spaces/scale.yaml"


def _configs(space: SearchSpace, target: str) -> dict[str, TransferConfig]:
    """Encoder -> the config of its MNLI trial (seed 1), as the define-by-run function assigns it."""
    configs: dict[str, TransferConfig] = {}
    for encoder in space.encoders:
        fixed = {"model.name_or_path": encoder, "seed": 1, "intermediate_task": "mnli"}

        def pick(param: Param, fixed: dict[str, Any] = fixed) -> Any:
            return fixed.get(param.name, param.corner(0))

        configs[encoder] = space.to_transfer_config(space._assign(target, pick), target)
    return configs


def test_each_encoder_gets_the_engine_its_size_needs_and_fits_half_a_gpu() -> None:
    space = load_space(SCALE)
    configs = _configs(space, "xquad")
    engines = {
        name: (c.deepspeed.zero_stage, c.model.gradient_checkpointing, c.deepspeed.offload_optimizer)
        for name, c in configs.items()
    }
    assert engines == {
        "xlm-roberta-base": (2, False, False),
        "xlm-roberta-large": (2, False, False),
        "facebook/xlm-roberta-xl": (2, False, False),
        "facebook/xlm-roberta-xxl": (3, True, True),
        "google/mt5-base": (2, False, False),
        "google/mt5-large": (2, False, False),
        "google/mt5-xl": (2, False, False),
        "google/mt5-xxl": (3, True, False),
    }
    # mT5 runs at its own learning rate in both phases; XLM-R at the base's.
    rates = {
        name: (c.intermediate.learning_rate if c.intermediate else None, c.target.learning_rate)
        for name, c in configs.items()
    }
    assert rates["google/mt5-xxl"] == (1e-4, 1e-4) and rates["facebook/xlm-roberta-xxl"] == (1e-5, 1e-5)
    totals: dict[str, float] = {}
    for name, config in configs.items():
        assert config.intermediate is not None
        phases: list[tuple[PhaseConfig, list[str]]] = [
            (config.intermediate, ["mnli"]),
            (config.target, ["xquad"]),
        ]
        for phase, tasks in phases:
            plan = memory_plan(config, phase, tasks)
            assert plan is not None, name
            totals[name] = max(totals.get(name, 0.0), plan.total / GIB)
    assert max(totals.values()) <= 40, totals
    # What the header says about the XXL encoders under these settings.
    assert totals["facebook/xlm-roberta-xxl"] == pytest.approx(11.1, abs=0.05)
    assert totals["google/mt5-xxl"] == pytest.approx(22.1, abs=0.05)


def test_the_dry_run_passes_and_names_the_largest_trial() -> None:
    text = dry_run(load_space(SCALE), [], None)
    assert "trials: 144 (48 per study" in text
    assert "distinct intermediate configurations the space allows: 24" in text
    assert "26.61 GiB" in text and "facebook/xlm-roberta-xl" in text
    # Every encoder's own largest plan, with the engine it gets.
    per_encoder = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    assert len(per_encoder) == 16  # 8 encoders x 2 phases
    xxl = [line for line in per_encoder if line.startswith("facebook/xlm-roberta-xxl target")]
    assert xxl == [
        "facebook/xlm-roberta-xxl target: 11.08 GiB = params 4.98 + grads 4.98 + optimizer 0.00 + "
        "activations 1.12 GiB (ZeRO 3, activation checkpointing)"
    ]


def _variant(tmp_path: Path, edit: Any) -> SearchSpace:
    data = yaml.safe_load(SCALE.read_text())
    edit(data)
    return space_from_dict(data, source=str(tmp_path / "scale-variant.yaml"))


def test_without_its_per_encoder_settings_the_xxl_trials_are_refused_on_one_gpu_each(tmp_path: Path) -> None:
    def one_gpu_plain_engine(data: dict[str, Any]) -> None:
        data["base"]["scaling"]["num_workers"] = 1
        for key in ("deepspeed.zero_stage", "model.gradient_checkpointing", "deepspeed.offload_optimizer"):
            del data["search"][key]

    with pytest.raises(MemoryPlanError) as error:
        dry_run(_variant(tmp_path, one_gpu_plain_engine), [], None)
    message = str(error.value)
    assert "\n" not in message
    assert "facebook/xlm-roberta-xxl" in message
    assert "set model.gradient_checkpointing" in message and "raise deepspeed.zero_stage (now 2)" in message


def test_on_one_gpu_each_without_its_offload_xlmr_xxl_is_refused_naming_both_offloads(tmp_path: Path) -> None:
    def one_gpu_no_offload(data: dict[str, Any]) -> None:
        data["base"]["scaling"]["num_workers"] = 1
        del data["search"]["deepspeed.offload_optimizer"]

    with pytest.raises(MemoryPlanError) as error:
        dry_run(_variant(tmp_path, one_gpu_no_offload), [], None)
    message = str(error.value)
    assert "facebook/xlm-roberta-xxl" in message
    advice = message.rsplit("A100 80GB: ", 1)[1]
    assert "set deepspeed.offload_optimizer" in advice and "set deepspeed.offload_param" in advice
    assert "gradient_checkpointing" not in advice and "zero_stage" not in advice  # both already set for it
