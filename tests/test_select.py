"""Tests of search/select.py (``xstilts select``) on synthetic MLflow stores written by search.tracking."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from fake_search import FakeTrial, demo_trials, fresh_store, log_search, scores

from search import select as sel
from search.cli import main
from trainers.config import TransferConfig

REPO = Path(__file__).resolve().parents[1]


def options(uri: str, out: Path, **kwargs: Any) -> sel.SelectOptions:
    """SelectOptions for search ``s`` of the store at ``uri``."""
    return sel.SelectOptions(search="s", tracking_uri=uri, out=str(out), **kwargs)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A read-only store: pawsx (criteria disagree) and xnli (criteria agree)."""
    uri = fresh_store(tmp_path_factory.mktemp("demo-store"))
    xnli = [
        FakeTrial("x0", "xnli", "none", 0, en_dev=70.0, target_dev=scores(60), zero_shot=scores(58)),
        FakeTrial("x1", "xnli", "mnli", 1, en_dev=75.0, target_dev=scores(65), zero_shot=scores(63)),
        FakeTrial("x2", "xnli", "qqp", 0, en_dev=72.0, target_dev=scores(61), status="early_stopped"),
    ]
    log_search(uri, "s", demo_trials("pawsx") + xnli)
    return uri


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh store with the demo search on pawsx only (for tests that write tags and runs)."""
    uri = fresh_store(tmp_path / "mlruns")
    log_search(uri, "s", demo_trials("pawsx"))
    return uri


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


# -- winners, exclusions, rankings -------------------------------------------------------------------


class _Stop(Exception):
    """Ends ``run_search`` once it has written its parent run."""


def test_select_reads_the_experiment_and_objective_the_tuner_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tuner runs up to its parent run (no Ray, no trial); select then finds that search by name.
    import search.costs
    from search import results, tracking, tuner
    from search.space import load_space

    for name in ("init_ray", "preflight_space", "check_resources"):
        monkeypatch.setattr(tuner, name, lambda *args, **kwargs: None)
    monkeypatch.setattr(search.costs, "check_memory", lambda *args, **kwargs: None)
    monkeypatch.setattr(tuner, "current_reach", lambda: SimpleNamespace(total=None))
    monkeypatch.setattr(tuner, "concurrent_trials", lambda *args, **kwargs: 1)  # the studies' shared slots
    monkeypatch.setattr(tuner, "nodes_without", lambda root: [])

    def parent_then_stop(uri: str, experiment: str, search: str, params: dict[str, Any]) -> Any:
        tracking.parent_run(uri, experiment, search, params)
        raise _Stop

    monkeypatch.setattr(tracking, "search_run", parent_then_stop)
    uri = fresh_store(tmp_path / "mlruns")
    space = REPO / "spaces" / "demo.yaml"
    options = tuner.SearchOptions(
        space=str(space), name="laid-out", storage=str(tmp_path / "searches"), tracking_uri=uri
    )
    with pytest.raises(_Stop):
        tuner.run_search(options)
    client = sel.open_store(uri)
    assert "laid-out" in results.known_searches(client)
    found = results.open_search("laid-out", uri)
    assert found.experiment == sel.search_experiment(client, "laid-out", uri)
    assert found.parent is not None and found.targets == list(load_space(str(space)).targets)
    assert found.objective() == load_space(str(space)).tuner.metric


@pytest.mark.parametrize(("criterion", "winner"), [("en_dev", "pawsx-1"), ("target_dev", "pawsx-2")])
def test_winner_per_criterion_among_completed_trials(demo_store: str, criterion: str, winner: str) -> None:
    selection, *_ = sel.plan_selection(options(demo_store, Path("unused"), criterion=criterion))
    pawsx = selection.targets[0]
    assert pawsx.target == "pawsx"
    assert pawsx.winner.trial_id == winner
    # pawsx-3 has the highest en_dev (75 when stopped), but it was stopped early; pawsx-4 failed.
    ranked = {t.trial_id for t in pawsx.rankings[criterion]}
    assert ranked == {"pawsx-0", "pawsx-1", "pawsx-2"}
    assert pawsx.counts == {"completed": 3, "early_stopped": 1, "failed": 1, "running": 0}


def test_rankings_are_ordered_best_first(demo_store: str) -> None:
    selection, *_ = sel.plan_selection(options(demo_store, Path("unused")))
    pawsx = selection.targets[0]
    assert [t.trial_id for t in pawsx.rankings["en_dev"]] == ["pawsx-1", "pawsx-2", "pawsx-0"]
    assert [t.trial_id for t in pawsx.rankings["target_dev"]] == ["pawsx-2", "pawsx-1", "pawsx-0"]
    assert pawsx.kendall_tau == pytest.approx(1 / 3)


def test_disagreement_count_and_both_winners_in_the_output(demo_store: str) -> None:
    selection, *_ = sel.plan_selection(options(demo_store, Path("unused")))
    assert [t.target for t in selection.targets] == ["pawsx", "xnli"]
    assert [t.disagree for t in selection.targets] == [True, False]
    assert (selection.disagreements, selection.comparable) == (1, 2)
    text = sel.format_selection(selection)
    assert "en_dev winner     trial pawsx-1" in text
    assert "target_dev winner trial pawsx-2" in text
    assert "disagree on 1 of 2 target(s)" in text


def _trial(run_id: str, en_dev: float, target_dev: float | None, start: int) -> sel.Trial:
    metrics = {"en_dev": en_dev}
    if target_dev is not None:
        metrics["target_dev_avg_non_en"] = target_dev
    return sel.Trial(run_id, run_id, "pawsx", "completed", start, {}, metrics)


def test_ties_are_broken_by_the_other_metric_then_start_time_then_run_id() -> None:
    trials = [
        _trial("e", 70.0, None, 1),  # no secondary metric: after those that have one
        _trial("d", 70.0, 50.0, 5),
        _trial("c", 70.0, 50.0, 3),  # same scores as d, started earlier
        _trial("b", 70.0, 50.0, 3),  # same as c, smaller run id
        _trial("a", 70.0, 55.0, 9),  # best secondary metric
        _trial("z", 71.0, 10.0, 9),  # best primary metric
    ]
    for order in (trials, trials[::-1]):
        assert [t.run_id for t in sel.rank(order, "en_dev")] == ["z", "a", "b", "c", "d", "e"]


def test_tie_break_end_to_end(tmp_path: Path) -> None:
    uri = fresh_store(tmp_path / "mlruns")
    log_search(
        uri,
        "s",
        [
            FakeTrial("first", "pawsx", "none", en_dev=60.0, target_dev=scores(50), zero_shot=scores(50)),
            FakeTrial("second", "pawsx", "mnli", en_dev=60.0, target_dev=scores(50), zero_shot=scores(50)),
            FakeTrial("better", "pawsx", "qqp", en_dev=60.0, target_dev=scores(51)),
        ],
    )
    ranking = sel.plan_selection(options(uri, tmp_path))[0].targets[0].rankings["en_dev"]
    assert [t.trial_id for t in ranking] == ["better", "first", "second"]


def test_completed_needs_evidence_of_the_full_budget() -> None:
    # Stores from before the worker's "finished" metric tagged ASHA-stopped trials completed as well.
    tag = {"xstilts.status": "completed"}
    assert sel.trial_status(tag, {"en_dev": 80.0, "target_step": 10.0}) == "early_stopped"
    assert sel.trial_status(tag, {"en_dev": 60.0, "zero_shot_avg": 50.0}) == "completed"
    assert sel.trial_status(tag, {"finished": 1.0}) == "completed"
    assert sel.trial_status({"xstilts.status": "failed"}, {}) == "failed"
    assert sel.trial_status({}, {}) == "running"


def test_kendall_tau() -> None:
    a, b, c = (_trial(x, 0, 0, 0) for x in "abc")
    assert sel.kendall_tau([a, b, c], [a, b, c]) == 1.0
    assert sel.kendall_tau([a, b, c], [c, b, a]) == -1.0
    assert sel.kendall_tau([a], [a]) is None


# -- files, tags and the summary run ----------------------------------------------------------------


def test_select_writes_round_tripping_configs_tags_winners_and_logs_a_summary(
    store: str, tmp_path: Path
) -> None:
    out = tmp_path / "best"
    selection = sel.select(options(store, out))
    path = out / "pawsx.yaml"
    assert selection.targets[0].path == path
    loaded = TransferConfig.from_yaml(path)
    mlflow = client(store)
    winner = selection.targets[0].winner
    artifact = yaml.safe_load(
        Path(mlflow.download_artifacts(winner.run_id, "config.yaml", str(tmp_path))).read_text()
    )
    # The trial's config as it ran, but a directory of its own for the re-run.
    assert loaded.output_dir == "runs/best/s/pawsx"
    assert {**loaded.to_dict(), "output_dir": artifact["output_dir"]} == artifact
    assert loaded.intermediate is not None and loaded.intermediate.tasks == ["mnli"]
    assert path.read_text().startswith("# Best configuration of target pawsx in search s")
    assert not [p for p in out.iterdir() if p.name != "pawsx.yaml"]  # no temp files left

    tags = mlflow.get_run(winner.run_id).data.tags
    assert (tags["best"], tags["best.criterion"]) == ("true", "en_dev")
    summary = mlflow.get_run(selection.run_id)
    assert summary.data.tags["xstilts.kind"] == "selection"
    assert summary.data.tags["xstilts.search"] == "s"
    assert summary.data.params["criterion"] == "en_dev"
    assert summary.data.metrics["disagreements"] == 1.0
    assert summary.data.metrics["pawsx/en_dev"] == 66.0
    artifacts = {a.path for a in mlflow.list_artifacts(selection.run_id)}
    assert {"ranking.md", "ranking.csv", "best_configs"} <= artifacts
    csv_text = Path(mlflow.download_artifacts(selection.run_id, "ranking.csv", str(tmp_path))).read_text()
    assert csv_text.splitlines()[0].startswith("target,criterion,rank,trial_id")

    # Selecting again on the oracle moves the best tag to the other trial.
    again = sel.select(options(store, out, criterion="target_dev"))
    assert again.targets[0].winner.trial_id == "pawsx-2"
    assert "best" not in mlflow.get_run(winner.run_id).data.tags
    assert mlflow.get_run(again.targets[0].winner.run_id).data.tags["best.criterion"] == "target_dev"


def test_best_file_is_never_half_written(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "best"
    out.mkdir()
    (out / "pawsx.yaml").write_text("old: content\n")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)  # the os module select writes through
    with pytest.raises(OSError, match="disk full"):
        sel.select(options(store, out))
    assert (out / "pawsx.yaml").read_text() == "old: content\n"
    assert sorted(p.name for p in out.iterdir()) == ["pawsx.yaml"]  # the temp file was removed


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.yaml"
    sel.write_atomic(path, "a: 1\n")
    sel.write_atomic(path, "a: 2\n")
    assert path.read_text() == "a: 2\n"
    assert os.listdir(path.parent) == ["x.yaml"]


def test_no_file_is_written_when_one_target_cannot_be_selected(tmp_path: Path) -> None:
    uri = fresh_store(tmp_path / "mlruns")
    log_search(uri, "s", [*demo_trials("pawsx"), FakeTrial("x", "xnli", status="early_stopped")])
    with pytest.raises(sel.SelectionError, match="target xnli: no completed trial"):
        sel.select(options(uri, tmp_path / "best"))
    assert not (tmp_path / "best").exists()


# -- bad input -----------------------------------------------------------------------------------


def test_unknown_search_names_the_existing_ones(demo_store: str, tmp_path: Path) -> None:
    with pytest.raises(sel.SelectionError, match=r"unknown search 'nope' .*searches there: s$"):
        sel.plan_selection(sel.SelectOptions(search="nope", tracking_uri=demo_store))


def test_no_completed_trials(tmp_path: Path) -> None:
    uri = fresh_store(tmp_path / "mlruns")
    log_search(
        uri,
        "s",
        [FakeTrial("a", "pawsx", status="early_stopped"), FakeTrial("b", "pawsx", status="failed")],
    )
    with pytest.raises(
        sel.SelectionError, match=r"target pawsx: no completed trial .*1 early-stopped, 1 failed"
    ):
        sel.plan_selection(options(uri, tmp_path))


def test_criterion_metric_missing(tmp_path: Path) -> None:
    # e.g. a target without per-language dev sets: no target_dev_avg_non_en.
    uri = fresh_store(tmp_path / "mlruns")
    log_search(uri, "s", [FakeTrial("a", "pawsx", en_dev=50.0, zero_shot=scores(40))])
    with pytest.raises(sel.SelectionError, match="no completed trial has the metric target_dev_avg_non_en"):
        sel.plan_selection(options(uri, tmp_path, criterion="target_dev"))
    # The strict criterion still works, and the oracle's ranking shows as n/a.
    selection = sel.plan_selection(options(uri, tmp_path))[0]
    assert "target_dev winner n/a" in sel.format_selection(selection)


def test_a_target_without_a_selection_metric_is_reported_and_the_others_selected(tmp_path: Path) -> None:
    # XTREME's Tatoeba: no English dev set (no en_dev) and no dev split (no target_dev); BUCC: no en_dev,
    # but a target_dev (dev F1 at a threshold tuned on that dev set, an oracle).
    uri = fresh_store(tmp_path / "mlruns")
    tatoeba = [FakeTrial("t0", "tatoeba", "none", en_dev=None, zero_shot={"de": 40.0, "es": 45.0})]
    bucc = [FakeTrial("b0", "bucc", "mnli", en_dev=None, target_dev={"de": 70.0}, zero_shot={"de": 68.0})]
    log_search(uri, "s", [*demo_trials("pawsx"), *tatoeba, *bucc])
    selection = sel.select(options(uri, tmp_path / "best"))
    assert [t.target for t in selection.targets] == ["pawsx"]
    assert (tmp_path / "best" / "pawsx.yaml").is_file()
    assert not (tmp_path / "best" / "tatoeba.yaml").exists()
    assert set(selection.not_selected) == {"tatoeba", "bucc"}
    output = sel.format_selection(selection)
    assert "tatoeba: NOT SELECTED: target tatoeba: no completed trial has the metric en_dev" in output
    assert "a retrieval target has no English dev set" in output
    # The oracle criterion ranks BUCC by its dev F1; Tatoeba has nothing to rank on either way.
    oracle = sel.plan_selection(options(uri, tmp_path, criterion="target_dev"))[0]
    assert {t.target for t in oracle.targets} == {"pawsx", "bucc"}
    assert set(oracle.not_selected) == {"tatoeba"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_tracking_server() -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(sel.SelectionError, match=f"tracking server {uri} is unreachable"):
        sel.plan_selection(sel.SelectOptions(search="s", tracking_uri=uri))


def test_missing_sqlite_store_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(sel.SelectionError, match="no MLflow store at"):
        sel.plan_selection(sel.SelectOptions(search="s", tracking_uri=f"sqlite:///{db}"))
    assert not db.exists()


def test_unknown_target(demo_store: str) -> None:
    with pytest.raises(sel.SelectionError, match=r"target udpos is not in search s \(pawsx, xnli\)"):
        sel.plan_selection(sel.SelectOptions(search="s", tracking_uri=demo_store, targets=["udpos"]))


def test_cli_prints_one_error_line(demo_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "--search", "nope", "--tracking-uri", demo_store]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"xstilts: error: unknown search 'nope' in {demo_store}; searches there: s"]


def test_cli_select(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "best"
    assert main(["select", "--search", "s", "--tracking-uri", store, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "selected: trial pawsx-1" in text and f"-> {out / 'pawsx.yaml'}" in text
    assert "MLflow: selection run" in text


# -- --confirm -------------------------------------------------------------------------------------


def fake_rerun(by_lr: dict[float, list[float]]) -> Any:
    """A stand-in for the re-run: en_dev from a table keyed by target.learning_rate, one value per seed."""
    calls: list[tuple[float, int]] = []

    def rerun(config: TransferConfig, backend: str, storage: str) -> dict[str, float]:
        calls.append((config.target.learning_rate, config.seed))
        seeds = [1, 2, 3]
        return {"en_dev": by_lr[config.target.learning_rate][seeds.index(config.seed)], "zero_shot_avg": 40.0}

    rerun.calls = calls  # type: ignore[attr-defined]
    return rerun


def confirm_store(tmp_path: Path) -> str:
    uri = fresh_store(tmp_path / "mlruns")
    log_search(
        uri,
        "s",
        [
            FakeTrial("a", "pawsx", "mnli", learning_rate=1e-3, en_dev=70.0, zero_shot=scores(50)),
            FakeTrial("b", "pawsx", "qqp", learning_rate=2e-3, en_dev=69.0, zero_shot=scores(50)),
            FakeTrial("c", "pawsx", "none", learning_rate=3e-3, en_dev=60.0, zero_shot=scores(50)),
        ],
    )
    return uri


def test_confirm_selects_on_the_seed_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = confirm_store(tmp_path)
    rerun = fake_rerun({1e-3: [60.0, 61.0, 62.0], 2e-3: [68.0, 69.0, 70.0]})
    monkeypatch.setattr(sel, "rerun", rerun)
    selection = sel.select(options(uri, tmp_path / "best", confirm=2, seeds=[1, 2, 3], backend="local"))
    pawsx = selection.targets[0]
    assert sorted(rerun.calls) == [(1e-3, 1), (1e-3, 2), (1e-3, 3), (2e-3, 1), (2e-3, 2), (2e-3, 3)]
    assert [s.trial.trial_id for s in pawsx.confirm] == ["b", "a"]
    assert pawsx.confirm[0].mean == pytest.approx(69.0) and pawsx.confirm[0].std == pytest.approx(1.0)
    assert not pawsx.tie  # 69 - 61 = 8 > 1
    assert pawsx.winner.trial_id == "b"  # the single-run winner a did not hold up
    assert TransferConfig.from_yaml(tmp_path / "best" / "pawsx.yaml").target.learning_rate == 2e-3
    tags = client(uri).get_run(pawsx.winner.run_id).data.tags
    assert tags["best.confirm"] == "69.00 +/- 1.00 over seeds 1,2,3"
    text = sel.format_selection(selection)
    assert "69.00 +/- 1.00 over seeds 1,2,3" in text and "clear win" in text


def test_confirm_reports_a_tie_within_the_seed_spread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = confirm_store(tmp_path)
    # Means 66 and 65: a lead of 1 is smaller than the spread (std 4), so it is no win.
    monkeypatch.setattr(sel, "rerun", fake_rerun({1e-3: [62.0, 66.0, 70.0], 2e-3: [64.0, 65.0, 66.0]}))
    selection = sel.select(options(uri, tmp_path / "best", confirm=2, backend="local"))
    pawsx = selection.targets[0]
    assert pawsx.tie
    assert pawsx.winner.trial_id == "a"
    assert "TIE" in sel.format_selection(selection)
    assert "a tie with the runner-up" in (tmp_path / "best" / "pawsx.yaml").read_text()
    metrics = client(uri).get_run(selection.run_id).data.metrics
    assert metrics["pawsx/confirm_tie"] == 1.0 and metrics["pawsx/confirm_mean"] == pytest.approx(66.0)


def test_is_tie() -> None:
    def scored(values: list[float]) -> sel.SeedScores:
        return sel.SeedScores(_trial("r", 0, 0, 0), [1, 2], values, [0.0] * len(values))

    assert sel.is_tie([scored([10, 12]), scored([10.5, 10.5])])  # lead 0.5 < std 1.41
    assert not sel.is_tie([scored([20, 20]), scored([10, 10])])
    assert not sel.is_tie([scored([10, 12])])  # no runner-up


def test_confirm_options_are_checked(demo_store: str) -> None:
    with pytest.raises(sel.SelectionError, match="--confirm must be >= 0"):
        sel.plan_selection(sel.SelectOptions(search="s", tracking_uri=demo_store, confirm=-1))
    with pytest.raises(sel.SelectionError, match="needs at least one seed"):
        sel.plan_selection(sel.SelectOptions(search="s", tracking_uri=demo_store, confirm=1, seeds=[]))
