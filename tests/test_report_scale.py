"""The encoder and freeze-depth views of ``xstilts report`` (search/report_scale.py, report_plots.py) on
hand-made trials."""

from __future__ import annotations

from pathlib import Path

import pytest

from search import tracking
from search.report_plots import plot_encoder_gains, plot_gain_vs_size, plot_intermediate_depth
from search.report_scale import (
    depth_points,
    encoder_gains,
    memory_measure,
    varies_encoder,
    varies_intermediate_depth,
)
from search.results import Trial
from trainers import keys
from trainers.memory import ENCODER_SHAPES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def trial(
    run_id: str,
    target: str,
    encoder: str,
    task: str,
    score: float,
    status: str = "completed",
    depths: tuple[int, int] = (0, 0),
    step_s: tuple[float, float] | None = None,
) -> Trial:
    """A hand-made trial as results.open_search returns it: flat config params and the searched ones."""
    params = {
        f"{tracking.SEARCHED_PREFIX}intermediate_task": task,
        "model.name_or_path": encoder,
        "intermediate.freeze_depth": str(depths[0]),
        "target.freeze_depth": str(depths[1]),
    }
    metrics = {"zero_shot_avg": score, "en_dev": 50.0}
    if step_s is not None:
        metrics["time/intermediate_step_s"], metrics["time/target_step_s"] = step_s
    return Trial(run_id, run_id, target, status, 0, params, metrics)


def test_the_gain_is_each_encoders_own_mean_over_its_baseline() -> None:
    trials = [
        trial("b0", "xnli", "xlm-roberta-base", "none", 70.0),
        trial("b1", "xnli", "xlm-roberta-base", "none", 72.0),  # seeds: the baseline mean is 71
        trial("b2", "xnli", "xlm-roberta-base", "mnli", 74.0),
        trial("b3", "xnli", "xlm-roberta-base", "mnli", 75.0),
        trial("b4", "xnli", "xlm-roberta-base", "mnli", 99.0, status="early_stopped"),  # never counts
        trial("x0", "xnli", "facebook/xlm-roberta-xxl", "none", 80.0),
        trial("x1", "xnli", "facebook/xlm-roberta-xxl", "mnli", 79.0),
        trial("m1", "xnli", "google/mt5-xxl", "mnli", 77.0),  # no baseline of its own: left out
        trial("p0", "panx", "xlm-roberta-base", "mnli", 60.0),  # nor here
    ]
    gains = encoder_gains(trials, ["xnli", "panx"])
    got = {(g.target, g.encoder, g.intermediate): (g.gain, g.trials, g.baseline_trials) for g in gains}
    assert got == {
        ("xnli", "xlm-roberta-base", "mnli"): (pytest.approx(3.5), 2, 2),
        ("xnli", "facebook/xlm-roberta-xxl", "mnli"): (pytest.approx(-1.0), 1, 1),
    }
    sizes = {g.encoder: g.parameters for g in gains}
    assert sizes["facebook/xlm-roberta-xxl"] == ENCODER_SHAPES["xlm-roberta-xxl"].parameters
    assert varies_encoder(trials)
    assert not varies_encoder([t for t in trials if "base" in t.params["model.name_or_path"]])


def test_depth_points_carry_both_depths_and_step_times() -> None:
    trials = [
        trial("n", "xnli", "xlm-roberta-large", "none", 70.0, depths=(8, 4), step_s=(0.0, 0.5)),
        trial("a", "xnli", "xlm-roberta-large", "mnli", 72.0, depths=(0, 0), step_s=(0.40, 0.50)),
        trial("b", "xnli", "xlm-roberta-large", "mnli", 71.0, depths=(12, 0), step_s=(0.25, 0.50)),
        trial("c", "xnli", "xlm-roberta-large", "mnli", 90.0, status="failed", depths=(20, 0)),
    ]
    points = depth_points(trials)
    assert [(p.intermediate, p.intermediate_depth, p.target_depth) for p in points] == [
        ("none", None, 4),  # no intermediate phase: its logged depth means nothing
        ("mnli", 0, 0),
        ("mnli", 12, 0),
    ]
    assert points[2].intermediate_step_s == 0.25 and points[2].target_step_s == 0.5
    assert varies_intermediate_depth(points)
    assert not varies_intermediate_depth(points[:2])


def test_the_plots_are_written(tmp_path: Path) -> None:
    trials = [
        trial("b0", "xnli", "xlm-roberta-base", "none", 70.0),
        trial("b1", "xnli", "xlm-roberta-base", "mnli", 73.0, depths=(12, 0), step_s=(0.2, 0.3)),
        trial("l0", "xnli", "xlm-roberta-large", "none", 75.0),
        trial("l1", "xnli", "xlm-roberta-large", "mnli", 76.0, step_s=(0.4, 0.5)),
        trial("u0", "xnli", "my/unknown-encoder", "none", 60.0),
        trial("u1", "xnli", "my/unknown-encoder", "mnli", 61.0),
    ]
    gains = encoder_gains(trials, ["xnli"])
    assert [g.parameters is None for g in gains] == [True, False, False]
    plot_encoder_gains(gains, tmp_path / "encoder_gains.png")
    plot_gain_vs_size(gains, tmp_path / "gain_size.png")
    plot_intermediate_depth(depth_points(trials), tmp_path / "intermediate_depth.png")
    for name in ("encoder_gains.png", "gain_size.png", "intermediate_depth.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def _with_memory(t: Trial, measure_key: str, peaks: tuple[float, float]) -> Trial:
    """``t`` with each phase's peak memory logged under ``measure_key`` (one of keys.MEMORY_PEAK_KEYS)."""
    for phase, peak in zip(("intermediate", "target"), peaks, strict=True):
        t.metrics[measure_key.format(phase=phase)] = peak
    return t


def _png_height(path: Path) -> int:
    """The height in pixels a PNG's header gives (IHDR: width, then height, big-endian)."""
    return int.from_bytes(path.read_bytes()[20:24], "big")


def test_depth_points_carry_peak_memory_and_the_plot_draws_it_when_logged(tmp_path: Path) -> None:
    cuda, rss = keys.MEMORY_CUDA_PEAK_MIB, keys.MEMORY_RSS_PEAK_MIB
    timed = [
        trial("a", "xnli", "xlm-roberta-large", "mnli", 72.0, depths=(0, 0), step_s=(0.4, 0.5)),
        trial("b", "xnli", "xlm-roberta-large", "mnli", 71.0, depths=(12, 0), step_s=(0.25, 0.5)),
    ]
    plain = depth_points(timed)
    assert memory_measure(plain) is None
    assert [p.intermediate_peak_mib for p in plain] == [None, None]

    on_gpu = [
        _with_memory(timed[0], cuda, (9000.0, 7000.0)),
        _with_memory(timed[1], cuda, (6000.0, 7000.0)),
        _with_memory(
            trial("c", "xnli", "xlm-roberta-large", "mnli", 70.0, depths=(20, 0)), rss, (800.0, 700.0)
        ),
    ]
    points = depth_points(on_gpu)
    assert [(p.intermediate_peak_mib, p.target_peak_mib, p.memory_measure) for p in points] == [
        (9000.0, 7000.0, "cuda"),
        (6000.0, 7000.0, "cuda"),
        (800.0, 700.0, "rss"),
    ]
    assert memory_measure(points) == "cuda"  # the CPU trial's RSS is not drawn on the GPU figure's axis
    assert memory_measure(points[2:]) == "rss"

    plot_intermediate_depth(plain, tmp_path / "without.png")
    plot_intermediate_depth(points, tmp_path / "with.png")
    # The memory row is a third row of axes under score and step time: the figure is half as tall again.
    assert _png_height(tmp_path / "with.png") > 1.3 * _png_height(tmp_path / "without.png")
