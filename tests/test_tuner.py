"""The search driver's decisions that need no cluster: concurrency, resource checks, tracking reachability."""

from __future__ import annotations

from pathlib import Path

import pytest

from search import tracking
from search.space import load_space
from search.tuner import SearchError, check_resources, concurrent_trials, trial_resources


def test_trial_resources_follow_the_base_scaling() -> None:
    assert trial_resources(load_space("demo")) == {"CPU": 0.95, "GPU": 0.0}
    assert trial_resources(load_space("xtreme"))["GPU"] >= 1


def test_concurrency_counts_each_trial_driver_beside_its_workers() -> None:
    demo = load_space("demo")
    # 2 CPUs: two trials of 0.95 + 0.01 fit; one more CPU would not fit a third.
    assert concurrent_trials(demo, {"CPU": 2.0}, None) == 2
    assert concurrent_trials(demo, {"CPU": 1.0}, None) == 1
    assert concurrent_trials(demo, {"CPU": 2.0}, 5) == 5  # an explicit override wins
    xtreme = load_space("xtreme")
    per_trial = trial_resources(xtreme)["GPU"]
    assert concurrent_trials(xtreme, {"CPU": 64.0, "GPU": 4 * per_trial}, None) == 4


def test_a_trial_bigger_than_the_cluster_is_an_error_before_any_trial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("XSTILTS_AUTOSCALING", raising=False)
    with pytest.raises(SearchError, match="GPU"):
        check_resources(load_space("xtreme"), {"CPU": 64.0, "GPU": 1.0})
    check_resources(load_space("demo"), {"CPU": 2.0})
    # On an autoscaling cluster the nodes do not exist yet: trust the launcher's config.
    monkeypatch.setenv("XSTILTS_AUTOSCALING", "1")
    check_resources(load_space("xtreme"), {"CPU": 0.0})


def test_unreachable_tracking_server_is_one_clear_error() -> None:
    with pytest.raises(tracking.TrackingError, match="unreachable"):
        tracking.check_tracking_uri("http://127.0.0.1:9", timeout_s=2)


def test_sqlite_tracking_store_directory_is_created(tmp_path: Path) -> None:
    tracking.check_tracking_uri(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
    assert (tmp_path / "a").is_dir()
