"""Intermediate length as a fidelity at the price of one run (intermediate.publish_steps).

One run to the longest declared length publishes an entry at each declared length; the entry at k steps
is the encoder a k-step phase under the same schedule gives, and a request for k is served from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from search.trial import TrialSettings, claim_intermediate
from trainers.checkpoint_cache import CheckpointCache, at_steps, intermediate_key, intermediate_run
from trainers.config import ConfigError
from trainers.worker import Plan, run_local

LONG, SHORT = 10, 2


def _fidelity(overrides: list[str]) -> list[str]:
    return [
        f"intermediate.schedule_steps={LONG}",
        *overrides,
        "target.max_steps=2",
        "evaluation.languages=[en,de]",
    ]


def _weights(entry: Path) -> dict[str, torch.Tensor]:
    return load_file(str(entry / "model.safetensors"))


def test_a_long_run_serves_a_short_request(tiny_config: Any, tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    long_run = tiny_config(
        tmp_path / "long",
        "udpos",
        ["ccg"],
        _fidelity([f"intermediate.max_steps={LONG}", f"intermediate.publish_steps=[{SHORT},{LONG}]"]),
    )
    first = run_local(Plan(long_run, str(cache_root)))
    assert first["intermediate_reused"] == 0.0 and first["intermediate/step"] == LONG
    cache = CheckpointCache(cache_root)
    short_entry = cache.lookup(intermediate_key(at_steps(long_run, SHORT)))
    assert short_entry is not None and cache.lookup(intermediate_key(long_run)) is not None
    assert len(cache.entries()) == 2
    meta = json.loads((short_entry / "meta.json").read_text())
    assert meta["key_fields"]["intermediate"]["max_steps"] == SHORT

    # A trial asking for the short length is served from the long run: nothing trained, nothing paid.
    short_request = tiny_config(
        tmp_path / "short",
        "udpos",
        ["ccg"],
        _fidelity([f"intermediate.max_steps={SHORT}", f"intermediate.publish_steps=[{SHORT},{LONG}]"]),
    )
    assert intermediate_run(short_request).intermediate.max_steps == LONG  # type: ignore[union-attr]
    second = run_local(Plan(short_request, str(cache_root)))
    assert second["intermediate_reused"] == 1.0 and second["cost/intermediate_gpu_s"] == 0.0
    assert len(cache.entries()) == 2

    # And what it was served is what a SHORT-step phase under the same schedule trains by itself.
    alone = tiny_config(tmp_path / "alone", "udpos", ["ccg"], _fidelity([f"intermediate.max_steps={SHORT}"]))
    run_local(Plan(alone, str(tmp_path / "other-cache")))
    trained = CheckpointCache(tmp_path / "other-cache").lookup(intermediate_key(alone))
    assert trained is not None
    assert intermediate_key(alone) == intermediate_key(short_request)  # same key: publish_steps is no input
    served, own = _weights(short_entry), _weights(trained)
    assert served.keys() == own.keys()
    for name in served:
        torch.testing.assert_close(served[name], own[name], rtol=0, atol=1e-6)
    # The long run really went on past it.
    longer = _weights(cache.lookup(intermediate_key(long_run)))  # type: ignore[arg-type]
    assert any(not torch.equal(longer[name], served[name]) for name in served)


def test_publish_steps_are_checked(tiny_config: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_steps \\(3\\) must be one of publish_steps"):
        tiny_config(
            tmp_path,
            "udpos",
            ["ccg"],
            _fidelity(["intermediate.max_steps=3", "intermediate.publish_steps=[2,10]"]),
        )
    with pytest.raises(ConfigError, match="needs schedule_steps"):
        tiny_config(
            tmp_path, "udpos", ["ccg"], ["intermediate.max_steps=2", "intermediate.publish_steps=[2]"]
        )


def test_a_short_request_waits_for_the_run_not_its_own_key(tiny_config: Any, tmp_path: Path) -> None:
    """While another trial holds the run's lease, a request for a shorter length does not lease its own key."""
    config = tiny_config(
        tmp_path,
        "udpos",
        ["ccg"],
        _fidelity([f"intermediate.max_steps={SHORT}", f"intermediate.publish_steps=[{SHORT},{LONG}]"]),
    )
    settings = TrialSettings(
        space=None,
        target="udpos",
        search="s",
        cache_root=str(tmp_path / "cache"),
        train_storage="",
        wait_timeout_s=0.5,
    )  # type: ignore[arg-type]
    cache = CheckpointCache(settings.cache_root)
    run_lease = cache.acquire(intermediate_key(intermediate_run(config)), owner="trainer", ttl_s=60)
    assert run_lease is not None
    with pytest.raises(TimeoutError, match="lease held by"):
        claim_intermediate(config, settings, "waiter", poll_s=0.05)
    assert (
        cache.acquire(intermediate_key(config), owner="probe", ttl_s=60) is not None
    )  # never leased by the waiter
    # Once the run has published the short entry, the waiter gets it even before the run ends.
    staging = cache.staging_dir(intermediate_key(config))
    (staging / "weights").write_text("w")
    cache.publish(staging, intermediate_key(config), {})
    found, lease = claim_intermediate(config, settings, "waiter", poll_s=0.05)
    assert found == cache.path(intermediate_key(config)) and lease is None
    run_lease.release()
