"""spaces/scale.yaml and spaces/freeze.yaml run on tiny shapes: their points, as the spaces build them, with
each encoder mapped onto the tiny encoder of its family and the data onto the miniature, through every phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from search.space import load_space
from trainers.config import TransferConfig, apply_overrides
from trainers.worker import Plan, run_local

STAND_INS = {
    "xlm-roberta-base": "tiny",
    "xlm-roberta-large": "tiny",
    "facebook/xlm-roberta-xl": "tiny",
    "facebook/xlm-roberta-xxl": "tiny",
    "google/mt5-base": "tiny-t5",
    "google/mt5-large": "tiny-t5",
    "google/mt5-xl": "tiny-t5",
    "google/mt5-xxl": "tiny-t5",
}
"""The tiny encoder of each family that the spaces' encoders stand in for on CPU."""


def _tiny(config: TransferConfig, cache_dir: Path, output: Path, *extra: str) -> TransferConfig:
    overrides = [
        "model.max_seq_length=64",
        "model.doc_stride=32",
        "data.source=miniature",
        f"data.cache_dir={cache_dir}",
        "data.max_train_examples=32",
        "data.max_eval_examples=8",
        "scaling.num_workers=1",
        "scaling.use_gpu=false",
        "deepspeed.precision=auto",
        "evaluation.split=dev",
        "evaluation.batch_size=32",
        "target.max_steps=2",
        "target.eval_every=null",
        f"output_dir={output}",
        *extra,
    ]
    if config.intermediate is not None:
        overrides.append("intermediate.max_steps=2")
    return TransferConfig.from_dict(apply_overrides(config.to_dict(), overrides))


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["facebook/xlm-roberta-xxl", "google/mt5-xxl"])
def test_the_scale_space_xxl_points_run_on_tiny_shapes(cache_dir: Path, tmp_path: Path, encoder: str) -> None:
    """The largest encoder of each family with MNLI, its engine as the space sets it: ZeRO 3 and activation
    checkpointing (optimizer offload is left out: DeepSpeed's CPU Adam op takes minutes to build on CPU;
    tests/test_startup_bounds.py builds it)."""
    space = load_space("scale")
    assert set(space.encoders) == set(STAND_INS), "an encoder of the space needs a tiny stand-in here"
    params: dict[str, Any] = {"model.name_or_path": encoder, "seed": 1, "intermediate_task": "mnli"}
    params = space._assign("xnli", lambda param: params.get(param.name, param.corner(0)))
    config = space.to_transfer_config(params, "xnli")
    assert (config.deepspeed.zero_stage, config.model.gradient_checkpointing) == (3, True)
    tiny = _tiny(
        config,
        cache_dir,
        tmp_path / "run",
        f"model.name_or_path={STAND_INS[encoder]}",
        "deepspeed.offload_optimizer=false",
    )
    results = run_local(Plan(tiny, cache_root=str(tmp_path / "cache")))
    assert results["finished"] == 1.0
    assert "intermediate/step" in results and 0.0 <= results["zero_shot_avg"] <= 100.0


@pytest.mark.slow
def test_the_freeze_space_freezes_both_phases_on_tiny_shapes(cache_dir: Path, tmp_path: Path) -> None:
    """A seeded point of spaces/freeze.yaml that freezes half the layers in both phases, on XCOPA (COPA's
    train set, one sequence per choice), with the depths scaled from XLM-R large's 24 layers to tiny's 2, and
    activation checkpointing on."""
    space = load_space("freeze")
    (point,) = [
        p
        for p in space.points_for("xcopa")
        if p.get("intermediate.freeze_depth") and p["target.freeze_depth"]
    ]
    config = space.to_transfer_config(point, "xcopa")
    assert config.intermediate is not None
    depths = (config.intermediate.freeze_depth * 2 // 24, config.target.freeze_depth * 2 // 24)
    assert depths == (1, 1)
    tiny = _tiny(
        config,
        cache_dir,
        tmp_path / "run",
        "model.name_or_path=tiny",
        f"intermediate.freeze_depth={depths[0]}",
        f"target.freeze_depth={depths[1]}",
        # Not the space's setting: frozen bottom layers under activation checkpointing, through the engine.
        "model.gradient_checkpointing=true",
    )
    results = run_local(Plan(tiny, cache_root=str(tmp_path / "cache")))
    assert results["finished"] == 1.0
    assert "intermediate/step" in results and 0.0 <= results["zero_shot_avg"] <= 100.0
