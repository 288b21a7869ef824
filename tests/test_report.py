"""Tests of search/report.py (``xstilts report``) on synthetic MLflow stores and Optuna studies."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fake_search import FakeTrial, demo_trials, fresh_store, log_optuna, log_search, scores

from search import report as rep
from search import select as sel
from search import tracking
from search.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def trial(
    run_id: str,
    target: str,
    task: str,
    zero_shot: float | None,
    en_dev: float = 50.0,
    status: str = "completed",
) -> sel.Trial:
    """A hand-made trial as select.load_trials returns it."""
    metrics = {"en_dev": en_dev}
    if zero_shot is not None:
        metrics["zero_shot_avg"] = zero_shot
    params = {f"{tracking.SEARCHED_PREFIX}intermediate_task": task, "target.freeze_depth": "0"}
    return sel.Trial(run_id, run_id, target, status, 0, params, metrics)


def test_heatmap_values_on_a_hand_made_case() -> None:
    trials = [
        trial("p0", "pawsx", "none", 50.0),
        trial("p1", "pawsx", "none", 52.0),  # the best baseline of pawsx
        trial("p2", "pawsx", "mnli", 55.0),
        trial("p3", "pawsx", "mnli", 51.0),
        trial("p4", "pawsx", "qqp", 49.5),
        trial("p5", "pawsx", "qqp", 90.0, status="early_stopped"),  # never counts
        trial("x0", "xnli", "none", 60.0),
        trial("x1", "xnli", "mnli+qqp", 63.0),
        trial("u1", "udpos", "mnli", 70.0),  # udpos has no baseline: its column is n/a
    ]
    heatmap = rep.gain_heatmap(trials, ["pawsx", "xnli", "udpos"])
    assert heatmap.rows == ["mnli", "mnli+qqp", "qqp"]
    assert heatmap.cols == ["pawsx", "xnli", "udpos"]
    expected = [[3.0, math.nan, math.nan], [math.nan, 3.0, math.nan], [-2.5, math.nan, math.nan]]
    for got_row, want_row in zip(heatmap.values, expected, strict=True):
        assert got_row == pytest.approx(want_row, nan_ok=True)
    assert heatmap.baseline["pawsx"] == 52.0 and math.isnan(heatmap.baseline["udpos"])
    assert heatmap.counts == [[2, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert heatmap.baseline_counts == {"pawsx": 2, "xnli": 1, "udpos": 0}


def test_heatmap_can_pick_cells_by_en_dev() -> None:
    trials = [
        trial("b", "pawsx", "none", 50.0, en_dev=60.0),
        trial("m1", "pawsx", "mnli", 58.0, en_dev=61.0),  # the best test score ...
        trial("m2", "pawsx", "mnli", 53.0, en_dev=65.0),  # ... but en_dev picks this one
    ]
    assert rep.gain_heatmap(trials, ["pawsx"]).values == [[8.0]]
    assert rep.gain_heatmap(trials, ["pawsx"], pick="en_dev").values == [[3.0]]


def test_languages_skip_per_metric_sub_keys() -> None:
    metrics = {"zero_shot/de": 1.0, "zero_shot/de/accuracy": 1.0, "zero_shot/en": 2.0, "zero_shot_avg": 1.5}
    found = rep.languages_of(sel.Trial("r", "r", "pawsx", "completed", 0, {}, metrics))
    assert list(found.items()) == [("en", 2.0), ("de", 1.0)]


def test_importances_from_the_optuna_study(tmp_path: Path) -> None:
    extra = [FakeTrial("p5", "pawsx", "mnli", 1, en_dev=64.0), FakeTrial("x", "xnli", "mnli", en_dev=60.0)]
    trials = demo_trials("pawsx") + extra
    db = log_optuna(tmp_path, "s", trials)
    assert rep.optuna_db(str(tmp_path), "s") == db
    found = rep.importances(db, "s", ["pawsx", "xnli", "udpos"])
    pawsx = found["pawsx"]
    assert isinstance(pawsx, dict)
    assert set(pawsx) >= {"intermediate_task", "target.freeze_depth", "target.learning_rate"}
    assert sum(pawsx.values()) == pytest.approx(1.0)
    assert found["xnli"] == "too few finished trials (1 < 4) for parameter importances"
    assert found["udpos"] == f"no study s.udpos in {db}"
    missing = rep.importances(tmp_path / "nope.db", "s", ["pawsx"])
    assert str(missing["pawsx"]).startswith("no Optuna database at")


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A store with search ``s`` (two targets, with its Optuna database) and search ``n`` (one target).

    Returns (tracking URI, storage of the Optuna databases).
    """
    root = tmp_path_factory.mktemp("searched")
    uri = fresh_store(root / "mlruns")
    mixture = FakeTrial("x9", "xnli", "mnli+qqp", 1, en_dev=61.0, target_dev=scores(53), zero_shot=scores(54))
    trials = [*demo_trials("pawsx"), *demo_trials("xnli"), mixture]
    log_search(uri, "s", trials)
    log_search(uri, "n", [replace(t, trial_id=f"n-{t.trial_id}") for t in demo_trials("pawsx")])
    storage = root / "searches"
    log_optuna(storage, "s", trials)
    return uri, storage


def test_report_writes_plots_and_summary_and_logs_them(searched: tuple[str, Path], tmp_path: Path) -> None:
    uri, storage = searched
    selection = sel.select(sel.SelectOptions(search="s", tracking_uri=uri, out=str(tmp_path / "best")))
    out = tmp_path / "report"
    result = rep.report(rep.ReportOptions(search="s", tracking_uri=uri, storage=str(storage), out=str(out)))
    names = sorted(p.name for p in result.files)
    assert names == [
        "compute.png",
        "freeze_depth.png",
        "gain_cost.png",
        "gain_heatmap.png",
        "importance.png",
        "summary.md",
        "winners_languages.png",
    ]
    for path in result.files:
        assert path.parent == out and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
    summary = (out / "summary.md").read_text()
    assert "| pawsx | 3 | 1 | 1 | 0 |" in summary
    assert "| mnli+qqp | n/a | +6.00 |" in summary
    assert "The two criteria pick different trials on 2 of 2 target(s)." in summary
    assert "- **pawsx**: " in summary and "intermediate_task 0." in summary
    # Logged as artifacts of the selection run.
    assert result.run_id is not None and result.run_id == selection.run_id
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(uri).list_artifacts(result.run_id, "report")}
    assert logged == {f"report/{name}" for name in names}


def test_report_without_selection_creates_a_summary_run(searched: tuple[str, Path], tmp_path: Path) -> None:
    uri, _ = searched
    result = rep.report(
        rep.ReportOptions(
            search="n", tracking_uri=uri, storage=str(tmp_path / "none"), out=str(tmp_path / "r")
        )
    )
    from mlflow.tracking import MlflowClient

    assert result.run_id is not None
    run = MlflowClient(uri).get_run(result.run_id)
    assert run.data.tags["xstilts.kind"] == "selection" and run.data.tags["xstilts.search"] == "n"
    assert run.info.run_name == "report"
    assert any("no Optuna database" in note for note in result.notes)
    assert "no Optuna database" in (tmp_path / "r" / "summary.md").read_text()


def test_report_bad_input(searched: tuple[str, Path], tmp_path: Path) -> None:
    uri, _ = searched
    with pytest.raises(sel.SelectionError, match=r"unknown search 'nope'.*searches there: n, s"):
        rep.report(rep.ReportOptions(search="nope", tracking_uri=uri))
    empty = fresh_store(tmp_path / "empty")
    log_search(empty, "e", [FakeTrial("a", "pawsx", status="failed")])
    with pytest.raises(sel.SelectionError, match="search e has no completed trial"):
        rep.report(rep.ReportOptions(search="e", tracking_uri=empty))
    with pytest.raises(sel.SelectionError, match="unknown --pick"):
        rep.report(rep.ReportOptions(search="s", tracking_uri=uri, pick="test"))


def test_cli_report(searched: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, storage = searched
    out = tmp_path / "cli-report"
    argv: list[Any] = ["report", "--search", "s", "--tracking-uri", uri, "--storage", str(storage)]
    assert main([*argv, "--out", str(out), "--no-log"]) == 0
    text = capsys.readouterr().out
    assert f"report of search s in {out}" in text and "MLflow" not in text
    assert (out / "gain_heatmap.png").is_file()


def test_compute_curve_follows_the_incumbent_over_spent_compute() -> None:
    """(e) Trials in start order; every trial's cost counts, only completed ones can become incumbent."""

    def priced(
        run_id: str,
        start: int,
        status: str,
        en_dev: float,
        zero_shot: float,
        cost: float,
        target: str = "udpos",
    ) -> sel.Trial:
        base = trial(run_id, target, "mnli", zero_shot, en_dev=en_dev, status=status)
        return replace(base, start_time=start, metrics={**base.metrics, "cost/gpu_s": cost})

    trials = [
        priced("c", 3, "completed", 70.0, 61.0, 5.0),
        priced("a", 1, "completed", 60.0, 55.0, 10.0),
        priced("b", 2, "early_stopped", 95.0, 99.0, 2.0),  # stopped early: paid for, never the incumbent
        priced("d", 4, "completed", 65.0, 70.0, 1.0),  # worse objective: the incumbent stays c
        priced("x", 1, "completed", 99.0, 99.0, 100.0, target="panx"),  # another target
    ]
    curve = rep.compute_curve(trials, "udpos", "en_dev")
    assert [p.gpu_s for p in curve] == [10.0, 12.0, 17.0, 18.0]
    assert [(p.objective, p.zero_shot) for p in curve] == [
        (60.0, 55.0),
        (60.0, 55.0),
        (70.0, 61.0),
        (70.0, 61.0),
    ]
    unpriced = [replace(t, metrics={k: v for k, v in t.metrics.items() if k != "cost/gpu_s"}) for t in trials]
    assert rep.compute_curve(unpriced, "udpos", "en_dev") == []


def _priced(
    run_id: str, task: str, zero_shot: float, cost: float, target: str = "xnli", **kw: Any
) -> sel.Trial:
    base = trial(run_id, target, task, zero_shot, **kw)
    return replace(base, metrics={**base.metrics, "cost/gpu_s": cost})


def test_pareto_front_keeps_the_points_no_other_beats_on_both() -> None:
    points = [(1.0, 0.0), (2.0, 3.0), (3.0, 2.0), (4.0, 5.0), (4.0, 4.0), (5.0, 5.0), (2.0, 3.0)]
    # (3, 2) costs more than (2, 3) for less; (4, 4) and (5, 5) are beaten by (4, 5); equal points both stay.
    assert rep.pareto_front(points) == [True, True, False, True, False, False, True]
    assert rep.pareto_front([]) == []


def test_gain_cost_points_measure_gain_over_the_mean_baseline_against_logged_cost() -> None:
    trials = [
        _priced("b1", "none", 50.0, 100.0),
        _priced("b2", "none", 52.0, 120.0),  # the baseline is their mean, 51
        _priced("m", "mnli", 55.0, 400.0),
        _priced("t", "xnli_tt", 58.0, 900.0),
        _priced("l", "mlm_multilingual", 53.0, 1000.0),  # dearer than xnli_tt for less gain: off the front
        _priced("s", "mnli", 70.0, 10.0, status="early_stopped"),  # never a point
        trial("u", "xnli", "mnli", 60.0),  # unpriced: left out
        _priced("p", "mnli", 90.0, 1.0, target="pawsx"),  # another target
    ]
    points = rep.gain_cost_points(trials, "xnli")
    assert [(p.trial_id, p.intermediate, p.gpu_s) for p in points] == [
        ("b1", "none", 100.0),
        ("b2", "none", 120.0),
        ("m", "mnli", 400.0),
        ("t", "xnli_tt", 900.0),
        ("l", "mlm_multilingual", 1000.0),
    ]
    assert [p.gain for p in points] == pytest.approx([-1.0, 1.0, 4.0, 7.0, 2.0])
    assert [p.on_front for p in points] == [True, True, True, True, False]
    assert rep.gain_cost_points(trials, "pawsx") == []  # no baseline to measure a gain against
    assert rep.gain_cost_points(trials, "udpos") == []


def test_report_shows_the_gain_cost_front_of_a_priced_search(tmp_path: Path) -> None:
    uri = fresh_store(tmp_path / "mlruns")
    fake = FakeTrial
    log_search(
        uri,
        "c",
        [
            fake("c-0", "xnli", "none", en_dev=60.0, zero_shot=scores(48), cost_gpu_s=3600.0),
            fake("c-1", "xnli", "mnli", en_dev=61.0, zero_shot=scores(51), cost_gpu_s=7200.0),
            fake("c-2", "xnli", "mlm_multilingual", en_dev=59.0, zero_shot=scores(49), cost_gpu_s=9000.0),
            fake("c-3", "xnli", "xnli_tt", en_dev=62.0, zero_shot=scores(53), cost_gpu_s=36000.0),
        ],
    )
    out = tmp_path / "report"
    result = rep.report(
        rep.ReportOptions(search="c", tracking_uri=uri, storage=str(tmp_path), out=str(out), log=False)
    )
    assert (out / "gain_cost.png").read_bytes()[:8] == PNG_MAGIC and out / "gain_cost.png" in result.files
    summary = (out / "summary.md").read_text()
    assert (
        "- **xnli**: none (c-0) +0.00 at 1 GPU-h, mnli (c-1) +3.00 at 2 GPU-h, xnli_tt (c-3) +5.00 at 10 GPU-h"
        in summary
    )
    assert "mlm_multilingual (c-2)" not in summary.split("## Gain against cost")[1].split("##")[0]
