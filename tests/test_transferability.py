"""LogME: the fixed-point solver reaches the maximum of the evidence defined in closed form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainers.transferability import _max_evidence, log_evidence, logme


def _svd(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    keep = s > 1e-10
    return u[:, keep], s[keep] ** 2


@pytest.mark.parametrize("shape", [(200, 8), (12, 30)])  # more examples than dimensions, and fewer
def test_fixed_point_is_the_maximum_of_the_evidence(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=shape)
    target = (features[:, 0] + 0.3 * rng.normal(size=shape[0]) > 0).astype(np.float64)
    u, sigma = _svd(features)
    best = _max_evidence(u, sigma, shape[1], target, iterations=1000)
    # The value the solver reports is the evidence of its (alpha, beta), computed from the definition...
    assert best.value == pytest.approx(log_evidence(features, target, best.alpha, best.beta), rel=1e-6)
    # ...and no other (alpha, beta) has more.
    for alpha in (best.alpha * 0.5, best.alpha * 2, 1.0, 0.01):
        for beta in (best.beta * 0.5, best.beta * 2, 1.0, 10.0):
            assert log_evidence(features, target, alpha, beta) <= best.value + 1e-9


def test_informative_features_score_higher_than_noise() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=400)
    noise = rng.normal(size=(400, 16))
    informative = noise.copy()
    informative[:, :4] += 3.0 * np.eye(4)[labels]  # the class shows in four dimensions
    assert logme(informative, labels) > logme(noise, labels)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        logme(np.zeros((5, 3)), np.zeros(4))


def test_rank_encoders_scores_the_base_and_matching_cache_entries(
    tiny_config: Any, tmp_path: Path, cache_dir: Path
) -> None:
    """The base encoder and each cached encoder of the same encoder and data are scored; others are not."""
    import shutil

    from trainers.checkpoint_cache import CheckpointCache, intermediate_key, key_fields
    from trainers.encoders import resolve_encoder
    from trainers.transferability import rank_encoders

    config = tiny_config(tmp_path / "run", "udpos", ["ccg"])
    cache = CheckpointCache(tmp_path / "cache")
    base = resolve_encoder("tiny", cache_dir)
    # A published "intermediate" encoder that is a copy of the base: it must score exactly as the base.
    staging = cache.staging_dir(intermediate_key(config))
    shutil.copytree(base, staging, dirs_exist_ok=True)
    cache.publish(staging, intermediate_key(config), {"key_fields": key_fields(config)})
    other = tiny_config(tmp_path / "other", "udpos", ["mnli"], ["model.name_or_path=minilm"])
    staging = cache.staging_dir(intermediate_key(other))
    shutil.copytree(base, staging, dirs_exist_ok=True)
    cache.publish(staging, intermediate_key(other), {"key_fields": key_fields(other)})

    ranked = rank_encoders(config, cache.root, max_rows=300)

    assert sorted(r.name for r in ranked) == ["ccg", "none"]  # the minilm entry is another encoder's
    assert ranked[0].score == pytest.approx(ranked[1].score)
    assert all(np.isfinite(r.score) for r in ranked)
