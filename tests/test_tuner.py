"""The search driver's decisions that need no cluster: concurrency, resource checks, tracking reachability."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from search import tracking
from search.launch import nodes_without
from search.resources import (
    Reach,
    ResourceError,
    autoscaling_config,
    check_resources,
    cluster_reach,
    concurrent_trials,
    runs_in_process,
    trial_actor_resources,
    trial_resources,
)
from search.space import load_space
from search.watchdog import StallWatch

ROOT = Path(__file__).resolve().parents[1]


def test_trial_resources_follow_the_base_scaling() -> None:
    assert trial_resources(load_space("demo")) == {"CPU": 0.95, "GPU": 0.0}
    assert trial_resources(load_space("xtreme")) == {"CPU": 16.0, "GPU": 4.0}


def test_concurrency_counts_each_trial_driver_beside_its_workers() -> None:
    demo = load_space("demo")
    # 2 CPUs: two trials of 0.95 + 0.01 fit; one more CPU would not fit a third.
    assert concurrent_trials(demo, {"CPU": 2.0}, None) == 2
    assert concurrent_trials(demo, {"CPU": 1.0}, None) == 1
    assert concurrent_trials(demo, {"CPU": 2.0}, 5) == 5  # an explicit override wins
    xtreme = load_space("xtreme")
    per_trial = trial_resources(xtreme)["GPU"]
    assert concurrent_trials(xtreme, {"CPU": 64.0, "GPU": 4 * per_trial}, None) == 4


def test_a_one_worker_trial_holds_its_worker_s_resources_in_its_own_actor(tmp_path: Path) -> None:
    demo = load_space("demo")  # one worker of 0.95 CPU: the trial's own actor runs it
    assert runs_in_process(demo.base_config("udpos").scaling)
    assert trial_actor_resources(demo, {"CPU": 2.0}) == {"CPU": 0.95}
    assert trial_actor_resources(demo, {"CPU": 2.0, "head": 1.0}) == {"CPU": 0.95}  # trains on a worker node
    data = yaml.safe_load((ROOT / "spaces" / "demo.yaml").read_text())
    data["base"]["scaling"]["worker_group"] = "always"
    (tmp_path / "always.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    always = load_space(str(tmp_path / "always.yaml"))  # each trial a Ray Train job beside a sliver of a CPU
    assert not runs_in_process(always.base_config("udpos").scaling)
    assert trial_actor_resources(always, {"CPU": 2.0}) == {"CPU": 0.01}
    # 1.91 CPUs hold two trials that are their own worker (2 x 0.95), one that also has a driver (0.96).
    assert concurrent_trials(demo, {"CPU": 1.91}, None) == 2
    assert concurrent_trials(always, {"CPU": 1.91}, None) == 1
    xtreme = load_space("xtreme")  # four workers: a Ray Train job, its trial actor a sliver of the head
    assert not runs_in_process(xtreme.base_config("xnli").scaling)
    assert trial_actor_resources(xtreme, {"CPU": 64.0, "head": 1.0}) == {"CPU": 0.0, "head": 0.001}


def test_a_trial_bigger_than_the_cluster_is_an_error_before_any_trial() -> None:
    with pytest.raises(ResourceError, match=r"needs 4 GPUs .* has 1"):
        check_resources(load_space("xtreme"), cluster_reach([{"CPU": 64.0, "GPU": 1.0}]))
    check_resources(load_space("demo"), cluster_reach([{"CPU": 2.0}]))
    # Enough CPUs in all, but a 4-CPU worker fits on no 2-CPU node.
    many = [{"CPU": 2.0, "GPU": 4.0}] * 8
    with pytest.raises(ResourceError, match="on one node"):
        check_resources(load_space("xtreme"), cluster_reach(many))
    check_resources(load_space("xtreme"), cluster_reach([{"CPU": 16.0, "GPU": 4.0}]))


def launcher_config(name: str) -> dict:
    """A cluster file as ``ray up`` leaves it on the head (Ray's own defaults merged in)."""
    from ray.autoscaler._private.util import prepare_config

    return dict(prepare_config(yaml.safe_load((ROOT / name).read_text())))


def test_an_autoscaling_cluster_reaches_what_its_node_types_allow() -> None:
    config = launcher_config("cluster.yaml")
    head_only = [{"CPU": 0.0, "GPU": 0.0, "head": 1.0, "memory": 1e10}]
    # With no live GPU node the plain check would refuse xtreme and run one trial at a time.
    with pytest.raises(ResourceError):
        check_resources(load_space("xtreme"), cluster_reach(head_only))
    reach = cluster_reach(head_only, config)
    assert reach.autoscaling
    # What the file says the autoscaler may start: the largest types first, at most max_workers nodes.
    types = [
        spec for name, spec in config["available_node_types"].items() if name != config["head_node_type"]
    ]
    types.sort(key=lambda spec: spec["resources"].get("GPU", 0), reverse=True)
    left, gpus = config["max_workers"], 0.0
    for spec in types:
        used = min(spec["max_workers"], left)
        gpus, left = gpus + used * spec["resources"]["GPU"], left - used
    assert reach.total["GPU"] == gpus > 0
    xtreme = load_space("xtreme")
    check_resources(xtreme, reach)
    assert (
        concurrent_trials(xtreme, reach.total, None) == xtreme.tuner.max_concurrent_trials
    )  # the space's cap
    uncapped = dataclasses.replace(
        xtreme, tuner=dataclasses.replace(xtreme.tuner, max_concurrent_trials=None)
    )
    assert concurrent_trials(uncapped, reach.total, None) == int(gpus // 4)
    # Nodes already up count toward the same maximum: the reach does not grow past it.
    running = [*head_only, types[0]["resources"]]
    assert cluster_reach(running, config).total["GPU"] == gpus
    # A cap of one worker node: only the largest type's single node.
    capped = {**config, "max_workers": 1}
    assert cluster_reach(head_only, capped).total["GPU"] == types[0]["resources"]["GPU"]


def test_the_launcher_config_is_found_on_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XSTILTS_AUTOSCALING_CONFIG", raising=False)
    assert autoscaling_config() is None  # a plain machine
    (tmp_path / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump(launcher_config("cluster.yaml")))
    found = autoscaling_config()
    assert found is not None and found["cluster_name"] == "xstilts"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(launcher_config("cluster.local.yaml")))
    monkeypatch.setenv("XSTILTS_AUTOSCALING_CONFIG", str(other))
    assert autoscaling_config()["cluster_name"] == "xstilts-local"  # type: ignore[index]


def test_a_cache_some_node_does_not_see_is_found(tmp_path: Path) -> None:
    seen: list[str] = []

    def probe(path: str, token: str) -> dict[str, bool]:
        seen.append(path)
        assert Path(path).read_text() == token  # the driver wrote the probe file before asking
        return {"head": True, "worker-a": True, "worker-b": False}

    assert nodes_without(str(tmp_path / "cache"), probe) == ["worker-b"]
    assert nodes_without(str(tmp_path / "cache"), lambda path, token: {"head": True}) == []
    assert not Path(seen[0]).exists() and not list((tmp_path / "cache").iterdir())  # probe file removed


def test_reach_without_a_launcher_config_is_what_is_alive() -> None:
    reach = cluster_reach([{"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}])
    assert reach == Reach({"CPU": 3.0, "GPU": 1.0}, [{"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}])


def test_unreachable_tracking_server_is_one_clear_error() -> None:
    with pytest.raises(tracking.TrackingError, match="unreachable"):
        tracking.check_tracking_uri("http://127.0.0.1:9", timeout_s=2)


def test_sqlite_tracking_store_directory_is_created(tmp_path: Path) -> None:
    tracking.check_tracking_uri(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
    assert (tmp_path / "a").is_dir()


def _parent_status(uri: str, run_id: str) -> tuple[str, int | None]:
    from mlflow.tracking import MlflowClient

    info = MlflowClient(tracking_uri=uri).get_run(run_id).info
    return info.status, info.end_time


def test_the_search_run_ends_finished_and_resume_reopens_the_same_run(tmp_path: Path) -> None:
    from fake_search import fresh_store

    uri = fresh_store(tmp_path / "mlruns")
    experiment = tracking.experiment_id(uri, "xstilts-s")
    with tracking.search_run(uri, experiment, "s", {"space": "x.yaml"}) as run_id:
        assert _parent_status(uri, run_id) == ("RUNNING", None)
    status, ended = _parent_status(uri, run_id)
    assert status == "FINISHED" and ended is not None
    with tracking.search_run(uri, experiment, "s", {"space": "x.yaml"}) as again:  # --resume
        assert again == run_id and _parent_status(uri, run_id)[0] == "RUNNING"
    status, ended_again = _parent_status(uri, run_id)
    assert status == "FINISHED" and ended_again is not None and ended_again >= ended


# SystemExit is what Ray's driver-side SIGTERM handler raises (ray stop, a killed job, `timeout`).
@pytest.mark.parametrize("stop", [RuntimeError("a study failed"), KeyboardInterrupt(), SystemExit(15)])
def test_the_search_run_ends_failed_when_the_search_fails_or_is_interrupted(
    tmp_path: Path, stop: BaseException
) -> None:
    from fake_search import fresh_store

    uri = fresh_store(tmp_path / "mlruns")
    experiment = tracking.experiment_id(uri, "xstilts-s")
    with pytest.raises(type(stop)), tracking.search_run(uri, experiment, "s", {}) as run_id:
        raise stop
    status, ended = _parent_status(uri, run_id)
    assert status == "FAILED" and ended is not None


@dataclasses.dataclass
class _Trial:
    """The attributes of a Tune ``Trial`` that StallWatch and TrialTracker read."""

    trial_id: str
    status: str = "RUNNING"
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    last_result: dict[str, Any] = dataclasses.field(default_factory=dict)


def test_the_watchdog_flags_a_silent_trial_once_and_clears_it_when_it_reports(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    stalls: list[tuple[str, float]] = []
    progress: list[str] = []
    watch = StallWatch(
        60.0, lambda t, s: stalls.append((t.trial_id, s)), lambda t: progress.append(t.trial_id)
    )
    watch.clock = lambda: now[0]
    silent, chatty, done = _Trial("silent"), _Trial("chatty"), _Trial("done", status="TERMINATED")
    trials = [silent, chatty, done]
    for trial in trials:
        watch.on_trial_start(0, trials, trial)
    for second in range(0, 200, 10):
        now[0] = float(second)
        watch.on_trial_result(0, trials, chatty, {})
        watch.on_step_end(0, trials)
    assert stalls == [("silent", 60.0)]  # once, at the bound; never the reporting or the finished trial
    assert "trial silent has reported nothing for 60 s" in caplog.text
    watch.on_trial_result(0, trials, silent, {})
    assert progress == ["silent"]
    now[0] = 230.0
    watch.on_step_end(0, trials)
    assert stalls == [("silent", 60.0)]  # silent again for 40 s only
    now[0] = 300.0
    watch.on_step_end(0, trials)
    # A new silence is flagged again (chatty too: it last reported at 190 s).
    assert stalls[1:] == [("silent", 110.0), ("chatty", 110.0)]


def test_a_stalled_trial_is_tagged_in_mlflow_until_it_reports(tmp_path: Path) -> None:
    from fake_search import FakeTrial, fresh_store, params_of, point
    from mlflow.tracking import MlflowClient

    uri = fresh_store(tmp_path / "mlruns")
    experiment = tracking.experiment_id(uri, "xstilts-s")
    parent = tracking.parent_run(uri, experiment, "s", {})
    tracker = tracking.TrialTracker(uri, experiment, parent, "s", "udpos", params_of)
    trial = _Trial("t1", config=point(FakeTrial("t1", "udpos")))
    tracker.on_trial_start(0, [trial], trial)
    run_id = tracker.run_ids["t1"]
    client = MlflowClient(tracking_uri=uri)
    tracker.flag_stalled(trial, 1800.0)
    assert client.get_run(run_id).data.tags[tracking.STALLED_TAG] == "no report for 1800 s"
    tracker.clear_stalled(trial)
    assert tracking.STALLED_TAG not in client.get_run(run_id).data.tags
    tracker.flag_stalled(trial, 1900.0)
    tracker.on_trial_error(0, [trial], trial)  # failed while stalled: the tag stays as evidence
    tags = client.get_run(run_id).data.tags
    assert tags[tracking.STALLED_TAG] == "no report for 1900 s" and tags[tracking.STATUS_TAG] == "failed"


def test_an_intermediate_task_the_miniature_cannot_generate_fails_the_search_before_any_trial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from search.tuner import SearchError, preflight_space
    from trainers.data.miniature import GENERATORS

    demo = load_space("demo")  # draws ccg, mnli, squad_v1 and the ccg+mnli mixture on the miniature
    preflight_space(demo)
    # Not a seeded point of the demo: only the space's choices name it.
    monkeypatch.delitem(GENERATORS, "squad_v1")
    with pytest.raises(SearchError, match=r"no miniature generator for task\(s\) squad_v1"):
        preflight_space(demo)
